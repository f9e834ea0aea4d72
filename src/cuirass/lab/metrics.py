"""Detection metrics against ground truth: ROC, recall at a benign FPR, campaign recall, leakage.

All functions take plain arrays and dicts, so any detector (ours or a peer) is measured alike.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from scipy.stats import rankdata


def roc_auc(pos: Sequence[float], neg: Sequence[float]) -> float:
    """Area under the ROC curve = P(score(attacker) > score(benign)), ties counting one half.

    Mann-Whitney: AUC = (R_pos - n_pos (n_pos + 1) / 2) / (n_pos n_neg), R_pos the rank sum of
    the positives among all scores (average ranks for ties).
    """
    n_pos, n_neg = len(pos), len(neg)
    if not n_pos or not n_neg:
        return math.nan
    ranks = rankdata(np.concatenate([np.asarray(pos, float), np.asarray(neg, float)]))
    return float((ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def roc_curve(pos: Sequence[float], neg: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """(FPR, TPR) over all distinct thresholds, flagging `score >= threshold`, from (0,0) to (1,1)."""
    p, n = np.asarray(pos, float), np.asarray(neg, float)
    thresholds = np.unique(np.concatenate([p, n]))[::-1]
    tpr = np.searchsorted(np.sort(-p), -thresholds, side="right") / max(len(p), 1)
    fpr = np.searchsorted(np.sort(-n), -thresholds, side="right") / max(len(n), 1)
    return np.concatenate([[0.0], fpr, [1.0]]), np.concatenate([[0.0], tpr, [1.0]])


def threshold_at_fpr(neg: Sequence[float], fpr: float) -> float:
    """The lowest threshold t such that flagging `score > t` flags at most fpr of `neg`."""
    n = np.sort(np.asarray(neg, float))[::-1]
    if not len(n):
        return math.inf
    k = int(math.floor(fpr * len(n)))  # negatives we may flag
    return float(n[k]) if k < len(n) else float(n[-1]) - 1e-9


def recall_at_fpr(pos: Sequence[float], neg: Sequence[float], fpr: float) -> dict[str, float]:
    """Recall of positives at the threshold that keeps the FPR of negatives <= fpr (ROC sense)."""
    t = threshold_at_fpr(neg, fpr)
    p, n = np.asarray(pos, float), np.asarray(neg, float)
    return {
        "threshold": t,
        "recall": float((p > t).mean()) if len(p) else math.nan,
        "fpr": float((n > t).mean()) if len(n) else math.nan,
    }


def leakage(times: Mapping[str, np.ndarray], first_flagged: Mapping[str, float | None]) -> float:
    """Share of the accounts' requests served up to and including the moment each was flagged.

    Replay is causal (a verdict at t uses events with ts <= t), so the flagging request itself
    was served: leaked(a) = #{ts <= first_flagged(a)}, or all requests if never flagged.
    """
    total = served = 0
    for account, ts in times.items():
        total += len(ts)
        flagged_at = first_flagged.get(account)
        served += len(ts) if flagged_at is None else int(np.searchsorted(ts, flagged_at, side="right"))
    return served / total if total else math.nan


def leakage_curve(
    times: Mapping[str, np.ndarray], first_flagged: Mapping[str, float | None], points: int = 200
) -> tuple[np.ndarray, np.ndarray]:
    """(event time, share of requests so far that were served unflagged), for plotting."""
    all_ts = np.sort(np.concatenate(list(times.values()))) if times else np.array([])
    if not len(all_ts):
        return np.array([]), np.array([])
    leaked = np.sort(
        np.concatenate(
            [
                ts if (at := first_flagged.get(a)) is None else ts[: int(np.searchsorted(ts, at, side="right"))]
                for a, ts in times.items()
            ]
        )
    )
    grid = np.linspace(all_ts[0], all_ts[-1], points)
    seen = np.searchsorted(all_ts, grid, side="right")
    served = np.searchsorted(leaked, grid, side="right")
    return grid, np.where(seen > 0, served / np.maximum(seen, 1), np.nan)


def campaign_outcome(
    members: Sequence[str], flagged: Mapping[str, float | None], times: Mapping[str, np.ndarray], catch_share: float
) -> dict[str, float | bool | int]:
    """One campaign: accounts, share flagged, caught (share >= catch_share), leakage, time to flag."""
    present = [a for a in members if a in times]
    if not present:
        return {
            "accounts": 0,
            "flagged_share": math.nan,
            "caught": False,
            "leakage": math.nan,
            "median_hours_to_flag": math.nan,
        }
    hit = [a for a in present if flagged.get(a) is not None]
    delays = [(flagged[a] - float(times[a][0])) / 3600.0 for a in hit]  # type: ignore[operator]
    share = len(hit) / len(present)
    return {
        "accounts": len(present),
        "flagged_share": share,
        "caught": share >= catch_share,
        "leakage": leakage({a: times[a] for a in present}, flagged),
        "median_hours_to_flag": float(np.median(delays)) if delays else math.nan,
    }
