"""The policy's configuration (the `policy:` section of the YAML file): bands, shadow mode, overrides, options.

Bands are checked top-down and the first that matches gives the ordered list of actions (respond/policy.py
decides with them). An action is one of the names in `cuirass.actions`; one that answers the request itself
(block, throttle) must come last in its band. `options` holds each action's options, passed to its defense.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from cuirass.actions import TERMINAL, Action


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BandCondition(_Section):
    flagged: bool | None = None  # effective flag (detector or operator, with hysteresis)
    campaign: bool | None = None  # member of a detected campaign
    min_score: float | None = Field(default=None, ge=0, le=1)


class Band(_Section):
    name: str
    when: BandCondition
    actions: list[Action]

    @model_validator(mode="after")
    def _terminal_last(self) -> Band:
        for a in self.actions[:-1]:
            if a in TERMINAL:
                raise ValueError(f"band {self.name!r}: {a!r} answers the request itself, so it must come last")
        return self


class PolicyOverride(_Section):
    """Per-model or per-org replacement of the global bands, default actions or shadow flag."""

    bands: list[Band] | None = None
    default_actions: list[Action] | None = None
    shadow: bool | None = None


def _default_bands() -> list[Band]:
    return [
        Band(
            name="campaign",
            when=BandCondition(campaign=True, flagged=True),
            actions=["strip_reasoning", "decoy", "perturb", "canary", "watermark", "signature", "logit_watermark"],
        ),
        Band(
            name="flagged",
            when=BandCondition(flagged=True),
            actions=["strip_reasoning", "perturb", "canary", "watermark", "signature", "logit_watermark"],
        ),
    ]


class PolicyConfig(_Section):
    shadow: bool = False  # decide and log everything, act on nothing
    shadow_actions: list[Action] = Field(default_factory=list)  # decide and log these, do not act
    bands: list[Band] = Field(default_factory=_default_bands)
    default_actions: list[Action] = Field(default_factory=list)  # for every unflagged request
    release_below: float = Field(default=0.5, ge=0, le=1)  # hysteresis: stay flagged down to this score
    allowlist: list[str] = Field(default_factory=list)  # account ids or "org:NAME"
    models: dict[str, PolicyOverride] = Field(default_factory=dict)
    orgs: dict[str, PolicyOverride] = Field(default_factory=dict)
    n_cohorts: int = Field(default=16, ge=1)
    n_honeypot_cohorts: int = Field(default=4, ge=1)
    options: dict[str, dict[str, Any]] = Field(
        default_factory=dict
    )  # per-action options, e.g. {throttle: {retry_after_s: 30}}
    # The longest answer (characters, per choice) the text defenses rewrite; a longer one is cut here with
    # finish_reason "length" (see respond/apply.py for why a cut).
    rewrite_max_chars: int = Field(default=100_000, ge=1_000, le=10_000_000)
