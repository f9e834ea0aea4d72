"""The campaign jobs of a history run, on the driver, from the rows pass 1 sent (passes.py).

Campaign linking is the one cross-account step: Leiden over the bipartite graph of accounts and
their linking features (campaigns.py), whose result feeds back into the accounts' verdicts.
The graph of one job is small (accounts active in the window, not events), so the jobs run here,
one after the other, with the very code and inputs the single-process Detector gives them
(Detector.campaign_snapshot): the same rows in the same order (accounts by first event), each
rebuilt when the Detector rebuilds it (the row cache's rule reads the account's own score only,
which pass 1 knows), features interned in the same order, the same warm start, the same seed.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence

import numpy as np

from cuirass.detect import campaigns
from cuirass.detect.campaigns import AccountRow, Campaign, CampaignResult, FeatureIndex
from cuirass.detect.engine import ROW_REFRESH_S, Detector
from cuirass.detect.signals import Link
from cuirass.spark.schedule import Plan


@dataclasses.dataclass(slots=True)
class Version:
    """An account's campaign-row inputs at a job (its state after its events before the job)."""

    n: int
    last_ts: float
    own: float
    volume: float
    summary: list[float]
    links: list[Link]


@dataclasses.dataclass(slots=True)
class RowInputs:
    """Pass 1's output arranged for the jobs."""

    accounts: list[str]  # every account, by first event (the single-process Detector's order)
    # Per job, in order: (account index, its new version). Consumed once, job by job, so that a long history's
    # versions need not all be held at once (history._versions_by_job streams them).
    by_job: Iterable[list[tuple[int, Version]]]


def run_jobs(inputs: RowInputs, plan: Plan) -> list[CampaignResult]:
    """Every campaign job in order (Detector.campaign_snapshot, then campaigns.run, each given the last one's warm
    start and lifts), without the warm start assignments (executors do not need them)."""
    detector = Detector(plan.calibration, campaign_interval_s=plan.interval, campaign_window_s=plan.window)
    n = len(inputs.accounts)
    latest: list[Version | None] = [None] * n
    latest_job = np.full(n, -1, dtype=np.int64)
    last_ts = np.full(n, -math.inf)
    features = FeatureIndex()
    cache: dict[int, tuple[AccountRow, int]] = {}  # account index -> (row, job of the version it was built from)
    assignment: dict[object, int] = {}
    standing: dict[str, float] = {}
    signals = detector.scorer.signals
    results = []
    for (k, now), versions in zip(enumerate(plan.times), inputs.by_job, strict=True):
        for i, version in versions:
            latest[i], latest_job[i], last_ts[i] = version, k, version.last_ts
        active = np.flatnonzero(last_ts >= now - plan.window).tolist()
        rows = []
        for i in active:
            v = latest[i]
            assert v is not None
            hit = cache.get(i)
            dirty = hit is None or hit[1] != latest_job[i]
            if hit is None or (dirty and (v.own < detector.threshold_logit or now - hit[0].built_ts >= ROW_REFRESH_S)):
                row = AccountRow(
                    inputs.accounts[i],
                    v.own,
                    np.asarray(v.summary, dtype=np.float64),
                    features.intern(v.links),
                    v.volume,
                    now,
                )
                hit = cache[i] = (row, int(latest_job[i]))
            rows.append(hit[0])
        if len(cache) > 2 * len(rows) + 1024:  # forget rows of accounts that left the window, as the Detector does
            cache = {i: cache[i] for i in active if i in cache}
        result = campaigns.run(
            rows, features, signals, detector.threshold_logit, now, detector.seed, assignment, standing
        )
        assignment, standing = result.assignment, campaigns.standing_of(result)
        results.append(dataclasses.replace(result, assignment={}))
    return results


def latest_campaigns(results: Sequence[CampaignResult]) -> dict[str, Campaign]:
    """Each campaign id's latest judgement (Detector.campaigns after the last job)."""
    found: dict[str, Campaign] = {}
    for result in results:
        for campaign in result.campaigns:
            found[campaign.id] = campaign
    return found
