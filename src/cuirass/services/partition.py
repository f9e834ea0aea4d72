"""One partition of the event stream and its Detector, fed in stream order, held at the campaign grid.

A single-process replay runs the campaign job before the first event at or after each grid time
(`Detector.maybe_run_campaigns`), over every account's state just before it. A fleet of shards keeps that
meaning with a barrier: a partition folds in events until the next one reaches `next_ts` (the grid time the
last job named), and holds it (`arrival`: its event time). Once every partition holds or has read all there
is, the leader (`services.leader`) names the job's time (`now`: the earliest held event, as the replay would
see it), each partition offers its campaign rows as of exactly that moment (`offer`), the leader runs the job
and each partition applies the result (`apply`) before it lets the held event in. So, on a stream whose
events were all published before the shards read them, shards give the replay's verdicts; what differs on a
live stream is in docs/fleet.md.

The partition's state, and where it stands in the stream and among the jobs (`seq`, `job`, `snapshot`,
`next_ts`), are checkpointed together (`dump`), on a timer rather than at each job: a shard that takes the
partition over restores them (`restore`), reads again from seq + 1, and applies the jobs done since from the
stored results, each at its own grid time, so it reaches the same state the lost owner had. Between
checkpoints, the leader only needs the partition's `status` (cheap to write), not its state.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import math
import pickle
import time
from collections.abc import Mapping
from typing import Any

import orjson

from cuirass.bus.partitions import Message
from cuirass.config import DetectionConfig
from cuirass.detect import checkpoint as ckpt
from cuirass.detect.campaigns import CampaignResult
from cuirass.detect.digest import Digest, digest
from cuirass.detect.engine import Detector
from cuirass.events.deadletter import DeadLetters
from cuirass.events.record import ANONYMOUS, Event
from cuirass.services.detection import verdict_row
from cuirass.verdicts.shards import Job, PartitionRow

log = logging.getLogger("cuirass.detect.shards")


def unpack_job(job: Job) -> tuple[CampaignResult | None, dict[str, float]]:
    """A done job's (campaign result, merged model first-seen times); job 0 has no result."""
    if job.result is None:
        return None, {}
    result, models = pickle.loads(job.result)  # written by services.leader to our own database
    return result, models


@dataclasses.dataclass(frozen=True, slots=True)
class Offer:
    """Campaign rows to write for a job: the new or changed ones, and the accounts whose rows to remove
    (None: remove every other row of the partition)."""

    rows: dict[str, bytes]
    removed: set[str] | None


class Partition:
    """A partition's Detector, its read position and where it waits."""

    def __init__(self, number: int, cfg: DetectionConfig, calibration: Mapping[str, Any] | None) -> None:
        self.number = number
        self.cfg = cfg
        self.detector = Detector(calibration, campaign_interval_s=cfg.campaign_interval_s)
        self.seq = 0  # last stream sequence folded into the state (or set aside)
        self.job = -1  # last campaign job applied
        self.snapshot = -1  # last job this partition offered rows for
        self.next_ts = -math.inf  # events at or after this wait for the next job (before job 0: every event)
        self.arrival: float | None = None  # event time of the held event
        self.caught_up = False
        self.backlog: collections.deque[Message] = collections.deque()
        self._held: Digest | None = None
        self.first_seq: dict[str, int] = {}  # account -> stream sequence of its first event (campaign row order)
        self.changed: set[str] = set()  # accounts to write at the next checkpoint
        self.gone: set[str] = set()  # accounts forgotten since the last checkpoint
        self.unsaved = 0  # events folded in since the last checkpoint
        self.reported: tuple[Any, ...] = ()  # the status the leader last saw (see `status`)
        self.saved_at = time.monotonic()
        self.written: dict[str, dict[str, Any]] = {}  # account -> the verdict row last written for it
        self.offered: dict[str, tuple[Any, bytes]] | None = None  # account -> (row key, blob) in detect_rows

    # -- checkpoints ----------------------------------------------------------------------------------
    @classmethod
    def restore(
        cls,
        number: int,
        cfg: DetectionConfig,
        calibration: Mapping[str, Any] | None,
        row: PartitionRow | None,
        accounts: Mapping[str, bytes],
    ) -> Partition:
        """The partition as its last checkpoint left it (a fresh one if none, or if it cannot be read)."""
        part = cls(number, cfg, calibration)
        if row is None:
            return part
        (seq, job, snapshot, next_ts), shared = pickle.loads(row.state)  # our own database, see `dump`
        try:
            ckpt.load_shared(part.detector, shared)
            for blob in accounts.values():
                account, first_seq = ckpt.load_account(part.detector, blob)
                part.first_seq[account] = first_seq
        except Exception:  # an unreadable checkpoint (another Cuirass version) must not stop the shard
            log.exception(
                "partition %d: its checkpoint cannot be read; it starts afresh at sequence %d (its accounts' "
                "earlier evidence is lost)",
                number,
                seq + 1,
            )
            part = cls(number, cfg, calibration)
        part.seq, part.job, part.snapshot, part.next_ts = seq, job, snapshot, next_ts
        return part

    def row(self) -> PartitionRow:
        models = self.detector.scorer.context.model_first_seen
        return PartitionRow(
            self.number, self.seq, self.job, self.snapshot, self.arrival, self.caught_up, dict(models), b""
        )

    def dump(self) -> tuple[PartitionRow, dict[str, bytes], set[str]]:
        """What a checkpoint writes: the partition's row (its state: where it stands and the detector's
        shared state), the accounts changed since the last one, and those it forgot."""
        accounts = self.detector.scorer.accounts
        changed = {a: ckpt.dump_account(self.detector, a, self.first_seq[a]) for a in self.changed if a in accounts}
        position = (self.seq, self.job, self.snapshot, self.next_ts)
        state = pickle.dumps((position, ckpt.dump_shared(self.detector)), protocol=pickle.HIGHEST_PROTOCOL)
        return dataclasses.replace(self.row(), state=state), changed, set(self.gone)

    def saved_now(self) -> None:
        self.changed.clear()
        self.gone.clear()
        self.unsaved = 0
        self.saved_at = time.monotonic()

    def status(self) -> tuple[Any, ...]:
        """What the leader reads: a change to it is reported at once (`ShardStore.report`)."""
        return (self.job, self.snapshot, self.arrival, self.caught_up)

    @property
    def dirty(self) -> bool:
        """Whether the state changed since the last checkpoint (events, a job applied, accounts forgotten)."""
        return bool(self.unsaved or self.changed or self.gone)

    @property
    def at_barrier(self) -> bool:
        """Whether the partition waits for the next campaign job: it holds an event at or after the grid
        time, or has read all there is."""
        return self.arrival is not None or self.caught_up

    def changed_verdicts(self, accounts: set[str]) -> list[dict[str, Any]]:
        """The verdict rows of `accounts` that differ from what was last written (after a campaign job most
        of a partition's verdicts are unchanged: writing them again would only load the database)."""
        out = []
        for account in accounts:
            if account not in self.detector.scorer.accounts:
                continue
            row = verdict_row(self.detector, account)
            if self.written.get(account) != row:
                self.written[account] = row
                out.append(row)
        return out

    # -- events ---------------------------------------------------------------------------------------
    def feed(self, dead_letters: DeadLetters) -> tuple[set[str], list[float]]:
        """Fold in backlog events until one must wait for the next campaign job.

        Returns the accounts touched and the publish times of the events folded in (for the lag metric).
        A duplicate (a sequence already folded in: the consumer restarted) is skipped; an event that cannot
        be read or scored is set aside in the dead letters and skipped, as `services.detection` does.
        """
        touched: set[str] = set()
        published: list[float] = []
        backlog = self.backlog
        while backlog:
            msg = backlog[0]
            if msg.seq <= self.seq:
                backlog.popleft()
                continue
            d = self._held
            if d is None:
                try:
                    event = Event.from_dict(orjson.loads(msg.data))
                    if event.account == ANONYMOUS:
                        self.seq = msg.seq
                        backlog.popleft()
                        continue
                    d = digest(event)
                    if not isinstance(d.ts, (int, float)) or isinstance(d.ts, bool) or not math.isfinite(d.ts):
                        raise ValueError(f"'ts' must be a finite number, got {d.ts!r}")
                except Exception as exc:  # noqa: BLE001 - one bad event must not stop the partition
                    dead_letters.add(f"{type(exc).__name__}: {exc}", seq=msg.seq, request_id=_request_id(msg.data))
                    self.seq = msg.seq
                    backlog.popleft()
                    continue
            if d.ts >= self.next_ts:
                self._held, self.arrival = d, float(d.ts)
                break
            self._held, self.arrival = None, None
            try:
                new = d.account not in self.detector.scorer.accounts
                self.detector.observe_digest(d)
            except Exception as exc:  # noqa: BLE001
                dead_letters.add(f"{type(exc).__name__}: {exc}", seq=msg.seq, request_id=_request_id(msg.data))
            else:
                if new:
                    self.first_seq[d.account] = msg.seq
                touched.add(d.account)
                published.append(msg.published)
            self.seq = msg.seq
            self.unsaved += 1
            backlog.popleft()
        self.changed |= touched
        return touched, published

    # -- campaign jobs --------------------------------------------------------------------------------
    def offer(self, job: Job) -> Offer:
        """The campaign rows of this partition's accounts as of the job's time (what the replay's
        `campaign_snapshot(now)` would build for them), each pickled for the leader: only those that differ
        from the last offer, most rows being cached from one job to the next (all of them when the table's
        content is not known, after a restore)."""
        detector = self.detector
        cached_before = set(detector._rows)
        rows = detector.campaign_snapshot(job.now)
        self.changed |= {r.account for r in rows if r.built_ts == job.now}
        self.changed |= (cached_before - set(detector._rows)) & set(detector.scorer.accounts)
        accounts = detector.scorer.accounts
        before = self.offered
        offered: dict[str, tuple[Any, bytes]] = {}
        changed = {}
        for r in rows:
            key = (accounts[r.account].first_ts, self.first_seq[r.account], r.built_ts)
            last = before.get(r.account) if before is not None else None
            if last is None or last[0] != key:
                features = [tuple(f) for f in ckpt.row_features(detector, r)]
                blob = pickle.dumps(
                    (key[:2], r.account, r.own, r.summary, features, r.volume, r.built_ts),
                    protocol=pickle.HIGHEST_PROTOCOL,
                )
                last = (key, blob)
                changed[r.account] = blob
            offered[r.account] = last
        self.offered = offered
        self.snapshot = job.id
        removed = None if before is None else set(before) - set(offered)
        return Offer(changed, removed)

    def apply(self, job: Job) -> set[str]:
        """Install a done job (lifts, signatures, models' first-seen times); returns the accounts to re-judge."""
        result, models = unpack_job(job)
        detector = self.detector
        if result is not None:
            if self.snapshot < job.id:  # restarted between offering rows and the job: rebuild the same cache
                self.offer(job)
                self.offered = None  # (what it offered here was not written)
            seen = detector.scorer.context.model_first_seen
            for model, ts in models.items():
                seen[model] = min(seen.get(model, ts), ts)
            detector.apply_campaigns(result)
            self.changed |= set(result.considered) & set(detector.scorer.accounts)
            before = set(detector.scorer.accounts)
            detector.forget(job.now - self.cfg.warm_start_s)  # bound memory, as `detect watch` does
            forgotten = before - set(detector.scorer.accounts)
            for account in forgotten:
                self.first_seq.pop(account, None)
                self.written.pop(account, None)
            self.gone |= forgotten
            self.changed -= forgotten
        self.job, self.snapshot, self.next_ts = job.id, max(self.snapshot, job.id), job.next_ts
        self.arrival = None if self._held is None or self._held.ts < job.next_ts else float(self._held.ts)
        return set(detector.scorer.accounts) if result is not None else set()

    def verdict_row(self, account: str) -> dict[str, Any]:
        return verdict_row(self.detector, account)


def _request_id(data: bytes) -> str | None:
    try:
        rid = orjson.loads(data).get("request_id")
    except Exception:  # noqa: BLE001 - it is already a dead letter; the id is a courtesy
        return None
    return str(rid) if rid is not None else None
