"""What is concluded about an account, as plain data: the detector's verdict with the operator's override applied.

The effective verdict: `allowlist` → never flagged; `flag` → flagged; `clear` → not flagged unless the
detector's score later rises clearly above the score the account had when it was cleared (new evidence,
not the same evidence again); no override → the detector's flag. The policy reads this model; the SQL
store (store.py) keeps the rows it is computed from.
"""

from __future__ import annotations

import dataclasses
from typing import Any

OVERRIDES = ("flag", "clear", "allowlist")
CLEAR_MARGIN = 0.1  # how far above its cleared score an account must rise to be flagged again


@dataclasses.dataclass(frozen=True, slots=True)
class AccountVerdict:
    account: str
    score: float
    flagged: bool  # effective, after overrides
    reasons: list[str]
    campaign: str | None
    first_flagged_ts: float | None
    auto_flagged: bool
    override: dict[str, Any] | None  # the override in force: verdict, by, reason, ts

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def effective(auto: dict[str, Any] | None, override: dict[str, Any] | None, account: str) -> AccountVerdict:
    """The effective verdict from the detector's row (`auto`) and the newest override, either may be None."""
    score = float(auto["score"]) if auto else 0.0
    auto_flagged = bool(auto and auto["flagged"])
    flagged = auto_flagged
    if override is not None:
        kind = override["verdict"]
        if kind == "allowlist":
            flagged = False
        elif kind == "flag":
            flagged = True
        elif kind == "clear":
            flagged = auto_flagged and score > (override.get("score_at") or 0.0) + CLEAR_MARGIN
    return AccountVerdict(
        account=account,
        score=score,
        flagged=flagged,
        reasons=list(auto["reasons"]) if auto else [],
        campaign=auto["campaign"] if auto else None,
        first_flagged_ts=auto["first_flagged_ts"] if auto else None,
        auto_flagged=auto_flagged,
        override=None if override is None else {k: override[k] for k in ("verdict", "by", "reason", "ts")},
    )
