"""Calibration: choose the score threshold so that at most `fpr` of benign accounts are flagged.

Benign traffic is replayed exactly as `detect run` would replay it and each account's peak
score is kept. The threshold is the split-conformal quantile of those scores (Vovk et al.
2005; Angelopoulos & Bates 2021, "A gentle introduction to conformal prediction"):

    q = the k-th smallest peak score,  k = ceil((n + 1) * (1 - fpr)),   flag iff score > q

which bounds the expected share of *new* benign accounts flagged by fpr when they resemble the
calibration set (exchangeability). Ties at q are never flagged. A bound on the expectation still
lets one held-out sample exceed fpr about half the time, so the quantile is taken at
fpr / SAFETY: a held-out set of the same size then stays under fpr with high probability. With
fewer than SAFETY/fpr - 1 accounts the bound cannot be met below the maximum; the threshold is
then just above the largest score and `guaranteed` is false.

Campaign lifts depend on the threshold, so calibration iterates: replay with a threshold,
recompute it from the scores, replay again, keeping the highest threshold seen.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from cuirass import __version__
from cuirass.detect.digest import Digest
from cuirass.detect.engine import DEFAULT_CAMPAIGN_INTERVAL_S, DEFAULT_CAMPAIGN_WINDOW_S, DEFAULT_THRESHOLD, Detector
from cuirass.detect.replay import Progress, digests, run
from cuirass.events.record import Event

VERSION = 1
MAX_ROUNDS = 3
SAFETY = 2.0  # quantile level = fpr / SAFETY (see module docstring)


def conformal_threshold(scores: Sequence[float], fpr: float) -> tuple[float, bool]:
    """(threshold, guaranteed): the smallest threshold t with `flag iff score >= t` meeting the bound."""
    if not 0.0 < fpr < 1.0:
        raise ValueError("fpr must be in (0, 1)")
    ordered = sorted(scores)
    n = len(ordered)
    if n == 0:
        raise ValueError("no benign accounts to calibrate on")
    k = math.ceil((n + 1) * (1.0 - fpr))
    guaranteed = k <= n
    q = ordered[min(k, n) - 1]
    return min(math.nextafter(q, math.inf), 1.0 + 1e-9), guaranteed


def calibrate(
    events: Iterable[Event],
    *,
    fpr: float = 0.001,
    safety: float = SAFETY,
    campaign_interval_s: float = DEFAULT_CAMPAIGN_INTERVAL_S,
    campaign_window_s: float = DEFAULT_CAMPAIGN_WINDOW_S,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Replay benign events and return the calibration dict (threshold, fpr, n_accounts, version, ...)."""
    return calibrate_digests(
        digests(events, progress),
        fpr=fpr,
        safety=safety,
        campaign_interval_s=campaign_interval_s,
        campaign_window_s=campaign_window_s,
    )


def calibrate_digests(
    ordered: Sequence[Digest],
    *,
    fpr: float = 0.001,
    safety: float = SAFETY,
    campaign_interval_s: float = DEFAULT_CAMPAIGN_INTERVAL_S,
    campaign_window_s: float = DEFAULT_CAMPAIGN_WINDOW_S,
) -> dict[str, Any]:
    """`calibrate` on the benign log's digests in event-time order (replay.in_time_order)."""
    if not 0.0 < fpr < 1.0:
        raise ValueError("fpr must be in (0, 1)")
    if safety < 1.0:
        raise ValueError("safety must be >= 1")
    if not ordered:
        raise ValueError("no benign events to calibrate on")
    threshold, guaranteed, peaks = DEFAULT_THRESHOLD, False, []
    best = 0.0
    for _ in range(MAX_ROUNDS):
        detector = run(
            Detector(
                {"threshold": threshold}, campaign_interval_s=campaign_interval_s, campaign_window_s=campaign_window_s
            ),
            ordered,
        )
        peaks = [state.peak for state in detector.scorer]
        new, guaranteed = conformal_threshold(peaks, fpr / safety)
        best = max(best, new)
        if new == threshold:
            break
        threshold = new
    flagged = sum(1 for p in peaks if p >= best)
    return {
        "threshold": best,
        "fpr": fpr,
        "quantile_level": fpr / safety,
        "n_accounts": len(peaks),
        "n_events": len(ordered),
        "flagged_at_threshold": flagged,
        "guaranteed": guaranteed,
        "campaign_interval_s": campaign_interval_s,
        "version": VERSION,
        "cuirass": __version__,
    }
