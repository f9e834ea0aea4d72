"""The campaign jobs of a history run, on the driver, from the rows pass 1 sent (passes.py).

Campaign linking is the one cross-account step: Leiden over the bipartite graph of accounts and
their linking features (campaigns.py), whose result feeds back into the accounts' verdicts.
The graph of one job is small (accounts active in the window, not events), so the jobs run here,
one after the other, with the very code and inputs the single-process Detector gives them:
the same rows in the same order (accounts by first event), features interned in the same
order, the same warm start, the same seed.

One input depends on verdicts: Detector.campaign_snapshot re-reads the row of an account that
changed since its last job, except that an already *flagged* account's row is refreshed at most
every ROW_REFRESH_S. Whether an account was flagged before a job depends on earlier jobs and on
signature matches between jobs, which only pass 2 sees. So the jobs run on an estimate of each
account's first flag time (its own score's first flag, and lifts over the threshold seen here);
every row-cache choice that estimate decided is recorded, and checked against pass 2's exact
first_flagged_ts (`disagreements`). When one disagrees, history.py runs the jobs again with the
exact times: the jobs up to the first disagreement are unchanged and that one becomes right, so
the loop ends, in practice after one or two rounds.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from cuirass.detect import campaigns
from cuirass.detect.campaigns import AccountRow, Campaign, CampaignResult, FeatureIndex
from cuirass.detect.engine import ROW_REFRESH_S, Detector
from cuirass.detect.scoring import AccountState
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
    by_job: list[list[tuple[int, Version]]]  # per job: (account index, its new version)
    own_flag: np.ndarray  # per account: event time its own score first reached the threshold (inf: never)


@dataclasses.dataclass(slots=True)
class Jobs:
    """The jobs' results, and the row-cache choices that depended on flag times."""

    results: list[CampaignResult]
    choices: list[tuple[int, int, bool]]  # (job, account index, assumed flagged before the job)

    def campaigns(self) -> dict[str, Campaign]:
        """Each campaign id's latest judgement (Detector.campaigns after the last job)."""
        found: dict[str, Campaign] = {}
        for result in self.results:
            for campaign in result.campaigns:
                found[campaign.id] = campaign
        return found

    def disagreements(self, flagged_ts: np.ndarray) -> int:
        """How many row-cache choices the exact first flag times (per account, inf: never) contradict."""
        times = [r.now for r in self.results]
        return sum(1 for k, i, assumed in self.choices if (flagged_ts[i] < times[k]) != assumed)


def run_jobs(inputs: RowInputs, plan: Plan, flag_estimate: np.ndarray) -> Jobs:
    """Run every campaign job in order (Detector.campaign_snapshot + campaigns.run), estimating
    first flag times from `flag_estimate` plus the lifts the jobs hand out."""
    detector = Detector(plan.calibration, campaign_interval_s=plan.interval, campaign_window_s=plan.window)
    signals = detector.scorer.signals
    estimate = flag_estimate.copy()
    n = len(inputs.accounts)
    latest: list[Version | None] = [None] * n
    latest_job = np.full(n, -1, dtype=np.int64)
    last_ts = np.full(n, -math.inf)
    index = {a: i for i, a in enumerate(inputs.accounts)}
    features = FeatureIndex()
    cache: dict[int, tuple[AccountRow, int]] = {}  # account index -> (row, job of the version it was built from)
    assignment: dict[object, int] = {}
    jobs = Jobs([], [])
    probe = AccountState("", (), 0.0)
    for k, now in enumerate(plan.times):
        for i, version in inputs.by_job[k]:
            latest[i], latest_job[i], last_ts[i] = version, k, version.last_ts
        active = np.flatnonzero(last_ts >= now - plan.window).tolist()
        rows = []
        for i in active:
            hit = cache.get(i)
            if hit is not None and hit[1] == latest_job[i]:
                rows.append(hit[0])  # unchanged since its row was built
                continue
            if hit is not None and now - hit[0].built_ts < ROW_REFRESH_S:
                flagged = bool(estimate[i] < now)
                jobs.choices.append((k, i, flagged))
                if flagged:
                    rows.append(hit[0])  # flagged: its row is not refreshed yet
                    continue
            v = latest[i]
            assert v is not None
            row = AccountRow(
                inputs.accounts[i],
                v.own,
                np.asarray(v.summary, dtype=np.float64),
                features.intern(v.links),
                v.volume,
                now,
            )
            cache[i] = (row, int(latest_job[i]))
            rows.append(row)
        if len(cache) > 2 * len(rows) + 1024:  # forget rows of accounts that left the window (as the Detector does)
            cache = {i: cache[i] for i in active if i in cache}
        result = campaigns.run(rows, features, signals, detector.threshold_logit, now, detector.seed, assignment)
        assignment = result.assignment
        for account, (_, lift, _) in result.lifts.items():
            i = index[account]
            v = latest[i]
            assert v is not None
            probe.own, probe.campaign_logit = v.own, lift
            if estimate[i] > now and probe.score >= detector.threshold:
                estimate[i] = now  # Detector.apply_campaigns flags it at the job's time
        jobs.results.append(dataclasses.replace(result, assignment={}))  # executors need no warm start
    return jobs


def first_flags(accounts: Sequence[str], flagged_ts: dict[str, float | None]) -> np.ndarray:
    """Per account index, its first flag time (inf when never flagged)."""
    return np.array([t if (t := flagged_ts.get(a)) is not None else math.inf for a in accounts], dtype=np.float64)
