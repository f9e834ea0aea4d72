"""Clean text for the null: real ShareGPT assistant answers (never watermarked by us)."""

from __future__ import annotations

import functools

import pytest


@functools.lru_cache(maxsize=1)
def _answers() -> tuple[str, ...]:
    from cuirass.lab.traffic.sources import sharegpt

    benign, _ = sharegpt()
    return tuple(a for conv in benign for _, a in conv.turns if len(a) >= 300)


@pytest.fixture(scope="session")
def answers() -> tuple[str, ...]:
    """Assistant answers of at least 300 characters, in a fixed order."""
    out = _answers()
    assert len(out) >= 2000
    return out
