"""The campaign leader: one shard of the fleet (the holder of the leader lock) runs the campaign job.

Campaign linking needs every account at once; the shards each hold a share. The leader drives the job on
the same grid of event time as a replay (`Detector.maybe_run_campaigns`), in three steps over the
`detect_*` tables (`verdicts.shards`):

1. When every partition holds an event at or after the grid time, or has read all there is, it names the job:
   `now` = the earliest held event (the event before which a replay runs the job), and the next grid time.
   The very first "job" (id 0) only fixes the grid from the first event, as the replay's first call does.
2. When every partition has offered its campaign rows as of `now`, it runs `campaigns.run` over all of them,
   in the order a single detector would meet those accounts (first event time, then stream sequence), with
   its feature index and last communities (so ids, tie-breaks and Leiden's warm start are the replay's), and
   stores the result, with the models' first-seen times merged across partitions.
3. The partitions apply it (`services.partition`); the leader writes the campaign list (`put_campaigns`).

Its own state (feature index, last communities) is stored with each job, so a new leader, after the old
one died, goes on from the last job exactly.
"""

from __future__ import annotations

import logging
import math
import pickle
from collections.abc import Mapping
from typing import Any

import numpy as np

from cuirass.detect import campaigns
from cuirass.detect.campaigns import AccountRow, CampaignResult, FeatureIndex
from cuirass.detect.engine import Detector
from cuirass.detect.evidence import sigmoid
from cuirass.verdicts.shards import Job, PartitionRow, ShardStore
from cuirass.verdicts.source import VerdictSource

log = logging.getLogger("cuirass.detect.leader")


class Leader:
    def __init__(
        self,
        store: ShardStore,
        verdicts: VerdictSource,
        partitions: int,
        calibration: Mapping[str, Any] | None,
        interval_s: float,
    ) -> None:
        self.store = store
        self.verdicts = verdicts
        self.partitions = partitions
        self.interval_s = interval_s
        self.model = Detector(calibration, campaign_interval_s=interval_s)  # signals, threshold, seed
        self.index = FeatureIndex()
        self.assignment: dict[object, int] = {}
        self.standing: dict[str, float] = {}  # the last job's lifts (campaigns.standing_of)
        self._restored_from: int | None = None
        self._parsed: dict[bytes, tuple[tuple[float, int], AccountRow]] = {}  # the last job's rows, by blob
        self._seen: dict[bytes, tuple[tuple[float, int], AccountRow]] = {}  # this job's
        self.jobs = 0

    def step(self) -> Job | None:
        """Move the campaign job one step if the partitions allow it; returns the job written, if any."""
        latest = self.store.latest_job(blobs=False)
        parts = {r.partition: r for r in self.store.partitions()}
        if len(parts) < self.partitions:
            return None  # a partition has never been read yet: its owner is still starting
        if latest is not None and latest.phase == "rows":
            if all(r.snapshot >= latest.id for r in parts.values()):
                return self._run(latest, parts)
            return None
        done = latest.id if latest is not None else -1
        if not all(r.job == done and (r.arrival is not None or r.caught_up) for r in parts.values()):
            return None
        arrivals = [r.arrival for r in parts.values() if r.arrival is not None]
        if not arrivals:
            return None  # no event has reached the grid yet
        now = min(arrivals)
        next_ts = (math.floor(now / self.interval_s) + 1) * self.interval_s
        job = Job(done + 1, "done" if latest is None else "rows", now, next_ts, None, None)
        self.store.put_job(job)
        return job

    def _run(self, job: Job, parts: Mapping[int, PartitionRow]) -> Job:
        self._restore(job.id)
        self._seen = {}
        rows = [row for _order, row in sorted(self._row(blob) for blob in self.store.rows())]
        if campaigns.needs_compaction(self.index, rows):  # bounded: only what this job's rows hold
            self.index = campaigns.compact(self.index, rows)
        m = self.model
        result = campaigns.run(
            rows, self.index, m.scorer.signals, m.threshold_logit, job.now, m.seed, self.assignment, self.standing
        )
        self.assignment, self.standing = result.assignment, campaigns.standing_of(result)
        models: dict[str, float] = {}
        for r in parts.values():
            for model, ts in r.models.items():
                models[model] = min(models.get(model, ts), float(ts))
        shipped = CampaignResult(result.now, result.considered, result.campaigns, result.lifts, result.signatures)
        done = Job(
            job.id,
            "done",
            job.now,
            job.next_ts,
            pickle.dumps((shipped, models), protocol=pickle.HIGHEST_PROTOCOL),
            pickle.dumps((self.index, self.assignment, self.standing), protocol=pickle.HIGHEST_PROTOCOL),
        )
        self.store.put_job(done)
        self._parsed, self._seen = self._seen, {}
        self._restored_from = job.id
        self.jobs += 1
        self.verdicts.put_campaigns(report(result))
        log.info(
            "campaign job %d at event time %.0f: %d accounts, %d campaigns",
            job.id,
            job.now,
            len(rows),
            len(result.campaigns),
        )
        return done

    def _row(self, blob: bytes) -> tuple[tuple[float, int], AccountRow]:
        """A partition's campaign row, and its place in the order one detector would meet the accounts.
        Most rows are the same blob as at the last job (a partition rebuilds only what changed): those
        are read once, their features interned once."""
        parsed = self._parsed.get(blob)
        if parsed is None:
            order, account, own, summary, features, volume, built_ts = pickle.loads(blob)  # our own database
            ids = self.index.intern(features)
            row = AccountRow(account, own, np.asarray(summary, dtype=np.float64), ids, volume, built_ts)
            parsed = (tuple(order), row)
        self._seen[blob] = parsed
        return parsed

    def _restore(self, job_id: int) -> None:
        """Before job `job_id`: take the state the previous job left (unless this leader wrote it)."""
        if self._restored_from == job_id - 1:
            return
        self._parsed = {}  # their feature ids were interned in another index
        previous = self.store.job(job_id - 1) if job_id > 0 else None
        if previous is not None and previous.leader is not None:
            state = pickle.loads(previous.leader)  # our own database
            self.index, self.assignment = state[0], state[1]
            self.standing = state[2] if len(state) > 2 else {}  # a job left by a leader before the lifts were kept
        else:
            self.index, self.assignment, self.standing = FeatureIndex(), {}, {}
        self._restored_from = job_id - 1


def report(result: CampaignResult) -> list[dict[str, Any]]:
    """The campaign list for the verdict store: each campaign with the members the job lifted."""
    return [
        {
            "id": c.id,
            "accounts": sorted(c.accounts),
            "score": sigmoid(c.logit),
            "reasons": list(c.reasons),
            "signature": list(c.signature),
        }
        for c in sorted(result.campaigns, key=lambda c: (-len(c.accounts), c.id))
    ]
