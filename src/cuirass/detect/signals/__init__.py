"""Signals: one small class per behaviour, registered by name (see base.Signal)."""

from __future__ import annotations

from collections.abc import Sequence

from cuirass.detect.signals import age, coverage, elicitation, infra, params, phrasing, pivot, shape, templates, timing  # noqa: F401  (registration)
from cuirass.detect.signals.base import SIGNALS, Context, Link, Signal, register

DEFAULT: tuple[str, ...] = (
    "reasoning",
    "rubric",
    "answer_format",
    "templates",
    "probing",
    "timing",
    "shape",
    "coverage",
    "age",
    "infra",
    "pivot",
    "phrasing",
)


def build(names: Sequence[str] | None = None) -> list[Signal]:
    """Instances of the named signals (default: all of DEFAULT), in that order."""
    chosen = DEFAULT if names is None else tuple(names)
    unknown = [n for n in chosen if n not in SIGNALS]
    if unknown:
        raise ValueError(f"unknown signal(s) {unknown}; known: {sorted(SIGNALS)}")
    return [SIGNALS[n]() for n in chosen]


__all__ = ["DEFAULT", "SIGNALS", "Context", "Link", "Signal", "build", "register"]
