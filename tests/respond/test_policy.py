"""The policy as a pure function: bands, hysteresis, allowlists, overrides, shadow mode."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from cuirass.respond.policy import Policy, PolicyConfig
from cuirass.verdicts.model import AccountVerdict


def verdict(
    score: float,
    flagged: bool = False,
    first: float | None = None,
    campaign: str | None = None,
    override: str | None = None,
) -> AccountVerdict:
    ov = {"verdict": override, "by": "op", "reason": "r", "ts": 0.0} if override else None
    eff = {"flag": True, "clear": False, "allowlist": False}.get(override or "", flagged)
    return AccountVerdict("a", score, eff, [], campaign, first, flagged, ov)


CFG = PolicyConfig.model_validate(
    {
        "bands": [
            {"name": "campaign", "when": {"campaign": True, "flagged": True}, "actions": ["decoy", "watermark"]},
            {"name": "flagged", "when": {"flagged": True}, "actions": ["perturb", "watermark"]},
            {"name": "watch", "when": {"min_score": 0.6}, "actions": ["watermark"]},
        ],
        "release_below": 0.4,
        "allowlist": ["vip", "org:partner"],
        "orgs": {"strict": {"bands": [{"name": "any-flag", "when": {"flagged": True}, "actions": ["block"]}]}},
        "models": {"beta": {"shadow": True}},
    }
)


def decide(
    v: AccountVerdict | None,
    account: str = "a",
    org: str | None = None,
    model: str = "m",
    allowlisted: bool = False,
    cfg: PolicyConfig = CFG,
):  # type: ignore[no-untyped-def]
    return Policy(cfg).decide(account, org, model, allowlisted, v)


def test_unflagged_accounts_pass() -> None:
    assert decide(None).actions == () and decide(None).label == "pass"
    assert decide(verdict(0.1)).actions == ()


def test_bands_top_down() -> None:
    assert decide(verdict(0.99, True, 1.0, campaign="c1")).band == "campaign"
    assert decide(verdict(0.99, True, 1.0)).actions == ("perturb", "watermark")
    assert decide(verdict(0.7)).actions == ("watermark",)


def test_hysteresis_keeps_a_flag_until_release_threshold() -> None:
    # flagged once (first_flagged_ts set), score has decayed under the threshold but not under release_below
    assert decide(verdict(0.5, flagged=False, first=1.0)).band == "flagged"
    assert decide(verdict(0.3, flagged=False, first=1.0)).band is None


def test_operator_verdicts_win() -> None:
    assert decide(verdict(0.0, override="flag")).band == "flagged"
    assert decide(verdict(0.99, True, 1.0, override="clear")).band != "flagged"
    assert decide(verdict(0.99, True, 1.0, override="allowlist")).actions == ()


def test_allowlists() -> None:
    flagged = verdict(0.99, True, 1.0)
    assert decide(flagged, account="vip").actions == ()
    assert decide(flagged, org="partner").actions == ()
    assert decide(flagged, allowlisted=True).actions == ()


def test_per_org_and_per_model_overrides_and_shadow() -> None:
    flagged = verdict(0.99, True, 1.0)
    assert decide(flagged, org="strict").actions == ("block",)
    shadow = decide(flagged, model="beta")
    assert shadow.actions == () and shadow.shadowed == ("perturb", "watermark") and shadow.label == "pass"
    partial = PolicyConfig.model_validate({**CFG.model_dump(), "shadow_actions": ["perturb"]})
    d = decide(flagged, cfg=partial)
    assert d.actions == ("watermark",) and d.shadowed == ("perturb",)


def test_bad_policies_are_rejected() -> None:
    with pytest.raises(ValidationError):
        PolicyConfig.model_validate({"bands": [{"name": "x", "when": {}, "actions": ["nuke"]}]})
    with pytest.raises(ValidationError):  # a refusal must be the last action
        PolicyConfig.model_validate({"bands": [{"name": "x", "when": {}, "actions": ["block", "watermark"]}]})
    with pytest.raises(ValidationError):
        PolicyConfig.model_validate({"release_below": 2})
