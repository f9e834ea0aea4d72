"""The policy: which actions an account's request gets, from its verdict and the configuration.

Bands are checked top-down and the first that matches gives the ordered list of actions. An account
matches a band by its effective verdict (flagged, with hysteresis), its score, or campaign membership.
Allowlisted accounts (on the account record, by operator verdict, or listed in the policy) always pass.
Shadow mode (global, per action, per model or per org) decides and logs but does not act.

Hysteresis: once an account has been flagged it stays flagged until its score falls below
`release_below` (or an operator clears it), so a harvester cannot slip in and out of the defenses by
pausing just long enough for its score to dip under the threshold.
"""

from __future__ import annotations

import dataclasses

from cuirass.actions import ACTIONS
from cuirass.config.policy import BandCondition, PolicyConfig
from cuirass.verdicts.model import AccountVerdict

__all__ = ["PASS", "Decision", "Policy", "PolicyConfig", "effective_flag"]


@dataclasses.dataclass(frozen=True, slots=True)
class Decision:
    band: str | None
    actions: tuple[str, ...]  # what is carried out, in order
    shadowed: tuple[str, ...]  # what was decided but only logged
    honeypot: bool  # the account is treated as a suspect (its cohort is a honeypot cohort)

    @property
    def label(self) -> str:
        """The event's `action`: the first action carried out, else `pass`."""
        return self.actions[0] if self.actions else "pass"


PASS = Decision(None, (), (), False)


def effective_flag(v: AccountVerdict | None, release_below: float) -> bool:
    if v is None:
        return False
    if v.override is not None:  # an operator's word is final (flag / clear / allowlist)
        return v.flagged
    return v.flagged or (v.first_flagged_ts is not None and v.score >= release_below)


class Policy:
    def __init__(self, config: PolicyConfig) -> None:
        self.config = config
        unknown = {a for a in config.shadow_actions if a not in ACTIONS}
        if unknown:
            raise ValueError(f"unknown actions in shadow_actions: {sorted(unknown)}")

    def decide(
        self, account: str, org: str | None, model: str, allowlisted: bool, verdict: AccountVerdict | None
    ) -> Decision:
        cfg = self.config
        if allowlisted or account in cfg.allowlist or (org is not None and f"org:{org}" in cfg.allowlist):
            return PASS
        if verdict is not None and verdict.override is not None and verdict.override["verdict"] == "allowlist":
            return PASS
        override = (cfg.orgs.get(org) if org is not None else None) or cfg.models.get(model)
        bands = override.bands if override and override.bands is not None else cfg.bands
        default = override.default_actions if override and override.default_actions is not None else cfg.default_actions
        shadow = override.shadow if override and override.shadow is not None else cfg.shadow
        flagged = effective_flag(verdict, cfg.release_below)
        score = verdict.score if verdict else 0.0
        in_campaign = bool(verdict and verdict.campaign)
        band = next((b for b in bands if _matches(b.when, flagged, in_campaign, score)), None)
        actions = tuple(band.actions) if band else tuple(default)
        if not actions:
            return Decision(band.name if band else None, (), (), flagged)
        if shadow:
            return Decision(band.name if band else None, (), actions, flagged)
        live = tuple(a for a in actions if a not in cfg.shadow_actions)
        return Decision(
            band.name if band else None, live, tuple(a for a in actions if a in cfg.shadow_actions), flagged
        )


def _matches(c: BandCondition, flagged: bool, in_campaign: bool, score: float) -> bool:
    if c.flagged is not None and c.flagged != flagged:
        return False
    if c.campaign is not None and c.campaign != in_campaign:
        return False
    return c.min_score is None or score >= c.min_score
