"""Sharded online detection: N `cuirass detect shard` processes share the event stream's partitions.

    gateways ──► JetStream stream, subjects cuirass.events.<p> (p = crc32(account) mod events.bus_partitions)
                     │ an ordered consumer per owned partition, from its checkpoint's sequence + 1
                     ▼
    shard ── Partition (a Detector per partition) ──► verdicts (put_auto)
      │          ├─ status (job, where it waits), reported as it changes, for the leader
      │          └─ checkpoint every CHECKPOINT_S: account states + stream sequence, one transaction
      └─ leases (verdicts.leases): a PostgreSQL advisory lock per partition, one for the leader
                 the leader (services.leader) runs the campaign job over every partition's rows

Each shard owns its fair share, ceil(partitions / live shards), chosen by rendezvous hashing (each shard
ranks the partitions by crc32(shard id, partition) and prefers the top), so shards rarely contend for the
same one. A shard that dies loses its locks with its database session; within `REBALANCE_S` the others
count one shard fewer and take its partitions over from their checkpoints. A shard that joins makes the
others give back what exceeds the new share (each checkpoints a partition before releasing it).

Detection lag (time a verdict was written minus the time the stream stored the event) is exported as the
Prometheus histogram `cuirass_detect_lag_seconds` and in a JSON status line every `status_s`.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import threading
import time
import zlib
from typing import Any, TextIO

import sqlalchemy as sa
from prometheus_client import Counter, Gauge, Histogram

from cuirass.bus.base import BusUnavailable
from cuirass.bus.notify import open_notifier
from cuirass.bus.partitions import PartitionReader
from cuirass.bus.push import Publisher, PushedVerdicts
from cuirass.config import Settings
from cuirass.events.deadletter import DeadLetters, RateLimitedLog
from cuirass.services.detection import load_calibration
from cuirass.services.leader import Leader
from cuirass.services.partition import Offer, Partition
from cuirass.storage.stores import open_verdict_source
from cuirass.verdicts.leases import LeaseLost, Leases
from cuirass.verdicts.shards import Job, ShardStore

log = logging.getLogger("cuirass.detect.shards")

BATCH = 2000  # events taken per partition per round
REBALANCE_S = 1.0  # how often a shard counts the live shards and takes or gives partitions
# A partition with changes is checkpointed this often while it reads a backlog, at once when it has read
# all there is, and when it is given away.
CHECKPOINT_S = 5.0

LAG = Histogram(
    "cuirass_detect_lag_seconds",
    "Time from the stream storing an event to the shard writing the verdict it changed",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
EVENTS = Counter("cuirass_detect_shard_events_total", "Events folded into detector state by this shard")
OWNED = Gauge("cuirass_detect_shard_partitions", "Partitions this shard owns")


class Shard:
    """One detector shard: its partitions, its leases, and (when elected) the campaign leader."""

    def __init__(
        self,
        settings: Settings,
        engine: sa.Engine,
        dead_letters: DeadLetters,
        status: TextIO | None = None,
        checkpoint_s: float = CHECKPOINT_S,
    ) -> None:
        if settings.events.bus is None:
            raise ValueError("detector shards read the event bus: set events.bus (e.g. nats://127.0.0.1:4222)")
        self.cfg = settings.detection
        self.partitions = settings.events.bus_partitions
        self.calibration = load_calibration(self.cfg)
        self.leases = Leases(engine, settings.events.bus_stream)
        self.store = ShardStore(engine, settings.events.bus_stream)
        # Every gateway hears of the verdicts this shard writes at once (bus.push; docs/fleet.md).
        self.notifier = open_notifier(settings)
        self.verdicts = PushedVerdicts(open_verdict_source(engine), Publisher(self.notifier))
        self.reader = PartitionReader(settings.events.bus, settings.events.bus_stream)
        self.leader = Leader(self.store, self.verdicts, self.partitions, self.calibration, self.cfg.campaign_interval_s)
        self.dead_letters = dead_letters
        self.parts: dict[int, Partition] = {}
        self.processed = 0
        self.status_out = status
        self.checkpoint_s = checkpoint_s
        self._log = RateLimitedLog(log)
        self._lags: list[float] = []
        self._rebalanced = 0.0
        self._jobs: dict[int, Job] = {}  # done jobs (they never change), for partitions catching up
        self._offers: dict[int, Offer] = {}  # campaign rows to write with this step's report
        self._rank = sorted(range(self.partitions), key=lambda p: zlib.crc32(f"{self.leases.member}:{p}".encode()))

    # -- ownership ------------------------------------------------------------------------------------
    def rebalance(self) -> None:
        """Hold ceil(partitions / live shards) partitions: give the least preferred back, take free ones."""
        share = math.ceil(self.partitions / self.leases.members())
        owned = [p for p in self._rank if p in self.parts]
        for p in owned[share:]:
            self._release(p)
        for p in self._rank:
            if len(self.parts) >= share:
                break
            if p not in self.parts and self.leases.take(p):
                self._adopt(p)
        OWNED.set(len(self.parts))

    def _adopt(self, p: int) -> None:
        row, accounts = self.store.load(p)
        part = Partition.restore(p, self.cfg, self.calibration, row, accounts)
        self.reader.open(p, part.seq + 1)
        self.parts[p] = part
        if row is None:
            self._checkpoint(part)  # the leader waits until every partition has a row
        part.reported = ()  # report its status at the next step, even if the row already says the same
        log.info("shard %d: took partition %d at sequence %d (job %d)", self.leases.member, p, part.seq + 1, part.job)

    def _release(self, p: int) -> None:
        part = self.parts[p]
        self._checkpoint(part)
        self.reader.close(p)
        del self.parts[p]
        self.leases.give(p)
        log.info("shard %d: gave partition %d back at sequence %d", self.leases.member, p, part.seq)

    def _lose(self, p: int) -> None:
        """A partition whose lease is gone: drop it without writing (its new owner resumes the checkpoint)."""
        self.reader.close(p)
        self.parts.pop(p, None)
        self.leases.owned.discard(p)

    def _checkpoint(self, part: Partition) -> None:
        row, changed, gone = part.dump()
        conn = self.leases.conn
        try:
            self.leases.verify(conn, part.number)
            self.store.checkpoint(conn, row, changed, gone)
            conn.commit()
        except LeaseLost:
            conn.rollback()
            log.warning("shard %d: lost partition %d; dropping it", self.leases.member, part.number)
            self._lose(part.number)
            return
        except BaseException:
            conn.rollback()
            raise
        part.saved_now()
        part.reported = part.status()

    def _report(self) -> None:
        """Tell the leader, in one transaction, the status of every partition whose status changed and the
        campaign rows offered this step (only for partitions this session still holds)."""
        parts = [part for part in self.parts.values() if part.status() != part.reported]
        if not parts and not self._offers:
            return
        conn = self.leases.conn
        try:
            held = self.leases.held(conn)
            for p in list(self.parts):
                if p not in held:
                    log.warning("shard %d: lost partition %d; dropping it", self.leases.member, p)
                    self._lose(p)
            for p, offer in self._offers.items():
                if p in self.parts:
                    self.store.offer_rows(conn, p, offer.rows, offer.removed)
            parts = [part for part in parts if part.number in self.parts]
            self.store.report(conn, [part.row() for part in parts])
            conn.commit()
        except BaseException:
            conn.rollback()
            for p in self._offers:  # not written: offer again at the next step, replacing every row
                if p in self.parts:
                    self.parts[p].offered, self.parts[p].snapshot = None, self.parts[p].job
            raise
        finally:
            self._offers = {}
        for part in parts:
            part.reported = part.status()

    # -- the loop -------------------------------------------------------------------------------------
    def step(self) -> int:
        """One round: rebalance (now and then), apply campaign jobs, read and fold events, report, checkpoint
        (now and then), lead."""
        if time.monotonic() - self._rebalanced >= REBALANCE_S:
            self._rebalanced = time.monotonic()
            self.rebalance()
        latest = self.store.latest_job(blobs=False)
        touched: dict[int, set[str]] = {p: self._jobs_due(part, latest) for p, part in self.parts.items()}
        wants = {p: BATCH - len(part.backlog) for p, part in self.parts.items()}
        idle = not any(part.backlog for part in self.parts.values())
        got = self.reader.take(wants, 0.05 if idle else 0.0)
        published: list[float] = []
        for p, part in self.parts.items():
            part.backlog.extend(got.get(p, ()))
            if latest is not None and part.job < latest.id and part.at_barrier:
                continue  # it waits for the leader's job: what it has read waits with it
            accounts, pub = part.feed(self.dead_letters)
            touched[p] |= accounts
            published += pub
            part.caught_up = part.arrival is None and not part.backlog and self.reader.caught_up(p)
        rows = [
            row
            for p, accounts in touched.items()
            if p in self.parts
            for row in self.parts[p].changed_verdicts(accounts)
        ]
        self.verdicts.put_auto(rows)
        self._lag(published)
        for part in list(self.parts.values()):  # first: a checkpoint reports the status with it
            if part.dirty and (part.caught_up or time.monotonic() - part.saved_at >= self.checkpoint_s):
                self._checkpoint(part)
        self._report()
        if self.leases.lead():
            self.leader.step()
        self.processed += len(published)
        EVENTS.inc(len(published))
        return len(published)

    def _jobs_due(self, part: Partition, latest: Job | None) -> set[str]:
        """At the barrier, offer rows to, or apply, the jobs after the partition's own; returns the accounts
        to re-judge. A partition restored from an older checkpoint applies several stored jobs in turn, one
        at each grid time, as it reads its events again."""
        touched: set[str] = set()
        while latest is not None and part.job < latest.id and part.at_barrier:
            job = latest if latest.id == part.job + 1 and latest.phase == "rows" else self._job(part.job + 1)
            if job.phase == "rows":
                if part.snapshot < job.id:
                    self._offers[part.number] = part.offer(job)
                break
            touched |= part.apply(job)
        return touched

    def _job(self, job_id: int) -> Job:
        """A job with its result: done jobs are kept (a job in its rows phase is read each time)."""
        job = self._jobs.get(job_id)
        if job is None:
            job = self.store.job(job_id)
            if job is None:
                raise RuntimeError(f"campaign job {job_id} is missing from the database")
            if job.phase == "done":
                low = min((part.job for part in self.parts.values()), default=job_id)
                self._jobs = {i: j for i, j in self._jobs.items() if i >= low}
                self._jobs[job_id] = job
        return job

    def _lag(self, published: list[float]) -> None:
        if not published:
            return
        now = time.time()
        for t in published:
            lag = max(0.0, now - t)
            LAG.observe(lag)
            self._lags.append(lag)

    def status(self) -> dict[str, Any]:
        """What the status line says: partitions, events, lag quantiles since the last line."""
        lags = sorted(self._lags)
        self._lags = []

        def q(x: float) -> float | None:
            return round(lags[min(len(lags) - 1, int(x * len(lags)))], 4) if lags else None

        return {
            "shard": self.leases.member,
            "partitions": sorted(self.parts),
            "leader": self.leases.leading,
            "events": self.processed,
            "jobs": self.leader.jobs,
            "lag_p50_s": q(0.5),
            "lag_p99_s": q(0.99),
            "lag_n": len(lags),
        }

    def run(self, stop: threading.Event, status_s: float = 5.0) -> None:
        """Run until `stop` is set; on the way out, checkpoint every partition and give it back."""
        delay = 0.5
        next_status = time.monotonic() + status_s
        while not stop.is_set():
            try:
                self.step()
                delay = 0.5
            except BusUnavailable as exc:
                self._log.warning("shard: event bus unavailable (%s); retrying", exc)
                stop.wait(delay)
                delay = min(delay * 2, 10.0)
            except (sa.exc.SQLAlchemyError, LeaseLost) as exc:
                self._log.warning(
                    "shard: database unavailable (%s); dropping every lease, retrying", type(exc).__name__
                )
                for p in list(self.parts):
                    self._lose(p)
                self.leases.drop()
                stop.wait(delay)
                delay = min(delay * 2, 10.0)
            except Exception:  # noqa: BLE001 - the shard outlives any one failure; retried with backoff
                self._log.warning("shard: step failed; retrying in %.1fs", delay, exc_info=True)
                stop.wait(delay)
                delay = min(delay * 2, 10.0)
            if time.monotonic() >= next_status:
                next_status = time.monotonic() + status_s
                line = json.dumps(self.status())
                print(line, file=self.status_out or sys.stdout, flush=True)
        self.close()

    def close(self) -> None:
        try:
            for p in list(self.parts):
                self._release(p)
        except Exception:  # leaving anyway: the next owner resumes the last checkpoint
            log.warning("shard: could not checkpoint every partition on the way out", exc_info=True)
        self.leases.drop()
        self.reader.close_all()
        if self.notifier is not None:
            self.notifier.close()
