"""Measuring one detector's verdicts on the test set against ground truth.

A detector is reduced to three per-account maps: a score (higher = more suspicious), when the
account was first flagged at its operating point (None = never), and its reasons. Cuirass and
the peer go through the same function, so their numbers are comparable line by line.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter, defaultdict
from typing import Any

import numpy as np

from cuirass.lab import metrics
from cuirass.lab.traffic.benign import HARD_NEGATIVE_KINDS


@dataclasses.dataclass
class Verdicts:
    """What a detector said about the test accounts."""

    name: str
    scores: dict[str, float]
    flagged_at: dict[str, float | None]
    reasons: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    operating_point: str = ""  # how the flag threshold was set
    campaign: dict[str, str | None] = dataclasses.field(default_factory=dict)  # detected campaign per account
    campaign_reasons: dict[str, list[str]] = dataclasses.field(default_factory=dict)


def assess(
    v: Verdicts,
    labels: dict[str, Any],
    times: dict[str, np.ndarray],
    fprs: tuple[float, ...],
    catch_share: float,
    max_false_positives: int = 50,
) -> dict[str, Any]:
    """ROC metrics, operating-point recall/FPR, per-kind and per-campaign outcomes, false positives."""
    info = labels["accounts"]
    test = list(times)  # accounts with at least one test event
    benign = [a for a in test if info[a]["label"] == "benign"]
    attack = [a for a in test if info[a]["label"] == "attack"]
    pos = [v.scores.get(a, 0.0) for a in attack]
    neg = [v.scores.get(a, 0.0) for a in benign]
    flagged = {a for a in test if v.flagged_at.get(a) is not None}
    out: dict[str, Any] = {
        "auc": metrics.roc_auc(pos, neg),
        "at_fpr": {str(f): metrics.recall_at_fpr(pos, neg, f) for f in fprs},
        "operating_point": {
            "how": v.operating_point,
            "benign_accounts": len(benign),
            "benign_flagged": sum(a in flagged for a in benign),
            "benign_fpr": _share(benign, flagged),
            "attack_accounts": len(attack),
            "recall": _share(attack, flagged),
        },
    }
    hard = [a for a in benign if info[a]["kind"] in HARD_NEGATIVE_KINDS]
    out["hard_negatives"] = {
        "kinds": list(HARD_NEGATIVE_KINDS),
        "accounts": len(hard),
        "flagged": sum(a in flagged for a in hard),
        "fpr": _share(hard, flagged),
    }
    kinds: dict[tuple[str, str], list[str]] = defaultdict(list)
    for a in test:
        kinds[(info[a]["label"], info[a]["kind"])].append(a)
    out["by_kind"] = [
        {
            "label": label,
            "kind": kind,
            "accounts": len(accts),
            "flagged_share": _share(accts, flagged),
            "mean_score": float(np.mean([v.scores.get(a, 0.0) for a in accts])),
        }
        for (label, kind), accts in sorted(kinds.items())
    ]
    campaigns = []
    for c in labels["campaigns"]:
        outcome = metrics.campaign_outcome(c["accounts"], v.flagged_at, times, catch_share)
        campaigns.append({"id": c["id"], "kind": c["kind"], "held_out": c["held_out"], **outcome})
    out["campaigns"] = campaigns
    out["campaign_recall"] = _campaign_recall(campaigns)
    fps = sorted((a for a in benign if a in flagged), key=lambda a: -v.scores.get(a, 0.0))
    out["false_positives"] = [
        {
            "account": a,
            "kind": info[a]["kind"],
            "score": v.scores.get(a, 0.0),
            "events": len(times[a]),
            "campaign": v.campaign.get(a),
            "reasons": v.reasons.get(a, []),
        }
        for a in fps[:max_false_positives]
    ]
    out["impure_campaigns"] = impure_campaigns(v, info, set(test))
    return out


def impure_campaigns(v: Verdicts, info: dict[str, Any], test: set[str], limit: int = 30) -> list[dict[str, Any]]:
    """Detected campaigns that contain benign accounts: their make-up by kind and the detector's reasons.

    This is where campaign-level false positives come from: benign accounts linked to one another
    or to attackers by the campaign job."""
    members: dict[str, list[str]] = defaultdict(list)
    for account, cid in v.campaign.items():
        if cid is not None and account in test:
            members[cid].append(account)
    rows: list[dict[str, Any]] = []
    for cid, accounts in members.items():
        benign = [a for a in accounts if info[a]["label"] == "benign"]
        if not benign:
            continue
        make_up = Counter(f"{info[a]['label']}/{info[a]['kind']}" for a in accounts)
        rows.append(
            {
                "id": cid,
                "accounts": len(accounts),
                "benign": len(benign),
                "benign_flagged": sum(v.flagged_at.get(a) is not None for a in benign),
                "make_up": dict(make_up.most_common()),
                "reasons": v.campaign_reasons.get(cid, [])[:6],
            }
        )
    rows.sort(key=lambda r: (-r["benign_flagged"], -r["benign"], r["id"]))
    return rows[:limit]


def _share(accounts: list[str], flagged: set[str]) -> float:
    return sum(a in flagged for a in accounts) / len(accounts) if accounts else math.nan


def _campaign_recall(campaigns: list[dict[str, Any]]) -> dict[str, Any]:
    """Caught / total per campaign kind, overall, and the kind's request-weighted leakage."""
    by: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for c in campaigns:
        if c["accounts"]:
            by[c["kind"]].append(c)
    summary = {
        kind: {
            "campaigns": len(cs),
            "caught": sum(c["caught"] for c in cs),
            "recall": sum(c["caught"] for c in cs) / len(cs),
            "flagged_share": float(np.mean([c["flagged_share"] for c in cs])),
            "leakage": float(np.mean([c["leakage"] for c in cs])),
        }
        for kind, cs in by.items()
    }
    every = [c for cs in by.values() for c in cs]
    summary["all"] = {
        "campaigns": len(every),
        "caught": sum(c["caught"] for c in every),
        "recall": sum(c["caught"] for c in every) / len(every) if every else math.nan,
    }
    return summary
