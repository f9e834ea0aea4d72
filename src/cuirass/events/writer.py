"""The batching background writer: the hot path spools an event and queues it in O(1); a thread writes batches.

Nothing is dropped. If the store (or the bus) is unavailable the writer keeps the batch and retries with
backoff, and the backlog grows. Memory is bounded: past `queue_max` queued events, new events are kept in
the spool only (the spill, `events.spool`) and read back from it, oldest first, once the queue has
drained; `/health/readiness` turns unready while the backlog exceeds `queue_max`, and `/metrics` shows
it. With the spool turned off there is no file to spill to: the queue goes on growing in memory (still
nothing dropped while the process lives), readiness is unready and a warning is logged, so that a load
balancer sends traffic elsewhere before memory runs out. Requests are never refused for it.

No record stops it. A batch the store refuses for a reason other than its availability is written row
by row; a row that still fails is stored degraded (the field that failed replaced by a marker naming
the error, then, failing that, the row without its content), so that there is still one event per
request, and the original goes to the dead-letter file. Any exception in the thread is caught and the
loop goes on; if the thread ends anyway, `ensure_alive` (called by the gateway's supervisor) starts
another, which first writes the batch the old one held.

With a spool (`events.spool`), each event is appended to a local file before its response completes
and the spool segment is deleted once the store holds all its events; on start the writer replays the
segments dead processes left, skipping the events the store already has (see `events.spool`).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import orjson
import sqlalchemy as sa

from cuirass.events.deadletter import DeadLetters, RateLimitedLog, encodable
from cuirass.events.log import EventSink, LogUnavailable
from cuirass.events.record import Event
from cuirass.events.spool import Segment, Spool, read_lines
from cuirass.events.store import minimal_row, to_row

log = logging.getLogger("cuirass.events")

_STOP = object()
# Errors that say the store is unavailable (down, locked, connection lost), not that the row is bad:
# for these the batch is kept and retried as it is.
_TRANSIENT = (
    sa.exc.OperationalError,
    sa.exc.InterfaceError,
    sa.exc.DisconnectionError,
    sa.exc.TimeoutError,
    LogUnavailable,
)
ORPHAN_SCAN_S = 30.0  # how often the spool is searched for segments that a dead worker left

Item = tuple[dict[str, Any], Segment | None]  # a stored row and the spool segment holding its copy


def transient(exc: BaseException) -> bool:
    """Whether a store error is about availability (retry as is) rather than the data (isolate the row)."""
    if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, _TRANSIENT)


class EventWriter:
    def __init__(
        self,
        events: EventSink,
        *,
        retention: str = "full",
        batch_size: int = 512,
        flush_interval_s: float = 0.25,
        queue_max: int = 200_000,
        on_written: Callable[[int, int], None] | None = None,
        spool: Spool | None = None,
        dead_letters: DeadLetters | None = None,
    ) -> None:
        self.events = events
        self.retention = retention
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.queue_max = queue_max
        self.on_written = on_written  # (events written, queue depth), e.g. for metrics
        self.spool = spool
        self.dead_letters = dead_letters or DeadLetters(None, "events", log)
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._held: list[Item] = []  # the batch being written, for a restarted thread to finish
        self._log = RateLimitedLog(log)
        self._refused = ""  # why the store last refused a row for its content
        self.written = 0
        self.replayed = 0  # events restored from dead processes' spool segments
        self.restarts = 0
        self.last_error: str | None = None
        self._started = False
        self._stopping = False
        self._stopped = False

    def start(self) -> None:
        if not self._started:
            self._started = True
            self._spawn()

    def _spawn(self) -> None:
        self._thread = threading.Thread(target=self._main, name="cuirass-event-writer", daemon=True)
        self._thread.start()

    def ensure_alive(self) -> bool:
        """Start a new writer thread if the running one has ended; True when one had to be started."""
        if not self._started or self._stopped or (self._thread is not None and self._thread.is_alive()):
            return False
        self.restarts += 1
        log.error("event writer thread had stopped; restarting it (restart %d)", self.restarts)
        self._spawn()
        return True

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def submit(self, event: Event) -> None:
        """Spool one event and queue it for the store; never raises, and blocks only on the spool write."""
        try:
            row = to_row(event, self.retention)
        except Exception as exc:  # noqa: BLE001 - an odd event is stored degraded, never lost
            row = encodable(event.to_dict())[0]
            self.dead_letters.add(f"{type(exc).__name__}: {exc}", record=row, request_id=event.request_id)
        seg = None
        full = self._queue.qsize() >= max(1, self.queue_max)  # 0 would spill every event and idle the writer
        if self.spool is not None:
            try:
                try:
                    line = orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE)
                except TypeError:  # e.g. nested past orjson's limit: the field becomes a marker
                    row = self._degrade(row)
                    line = orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE)
                seg, spilled = self.spool.append(line, overflow=full)
                if spilled:  # in the spool only; the writer reads it back once the queue has drained
                    return
            except Exception as exc:  # noqa: BLE001 - a full or failing disk: the event is still queued
                self.spool.errors += 1
                self._log.warning("event spool write failed (%s); events are in memory only until stored", exc)
        if full:
            self._log.warning(
                "event queue past events.queue_max (%d) with no spool to spill to; holding events in memory",
                self.queue_max,
            )
        self._queue.put((row, seg))

    def _degrade(self, row: dict[str, Any]) -> dict[str, Any]:
        """The row with each field JSON cannot hold replaced by a marker; the original to the dead letters."""
        kept, error = encodable(row)
        if error is not None:
            self.dead_letters.add(error, record=kept, request_id=row.get("request_id"))
        return kept

    @property
    def depth(self) -> int:
        """Events answered but not yet stored: queued in memory, plus spilled to the spool only."""
        return self._queue.qsize() + self.spilled

    @property
    def spilled(self) -> int:
        return 0 if self.spool is None else self.spool.spilled

    @property
    def healthy(self) -> bool:
        """Alive and keeping up: a store or bus that is down makes this false only once the backlog
        passes `queue_max` (requests are served either way)."""
        return self.alive and self.depth <= self.queue_max

    def state(self) -> dict[str, Any]:
        """What readiness reports about the writer."""
        return {
            "alive": self.alive,
            "restarts": self.restarts,
            "queue_depth": self.depth,
            "queue_max": self.queue_max,
            "spilled": self.spilled,
            "written": self.written,
            "replayed": self.replayed,
            "dead_letters": self.dead_letters.count,
            "last_error": self.last_error,
            "spool": None
            if self.spool is None
            else {"fsync": self.spool.fsync, "segments": self.spool.segments, "errors": self.spool.errors},
        }

    def close(self, timeout: float = 30.0) -> None:
        """Flush everything queued so far and stop the thread; the spool keeps what could not be stored."""
        if not self._started or self._stopped:
            return
        self.ensure_alive()
        self._stopping = True
        self._queue.put(_STOP)
        assert self._thread is not None
        self._thread.join(timeout)
        self._stopped = True
        if self._thread.is_alive():
            log.error("event writer did not finish within %.0fs; %d events still queued", timeout, self.depth)
            return  # the thread still uses the spool: its segments stay for the next start to replay
        if self.spool is not None:
            self.spool.close()

    # -- the thread ------------------------------------------------------------------------------------

    def _main(self) -> None:
        """The thread: replay orphans, then write batches until stopped; an exception restarts the loop."""
        delay = 0.05
        while True:
            try:
                if self._held:  # the batch a failed loop held: some rows may be stored already
                    self._write(self._held, dedup=True)
                self._replay_orphans()
                self._run()
                return
            except Exception as exc:  # the writer outlives any one failure
                self.last_error = type(exc).__name__
                log.exception("event writer failed (%s); going on in %.2fs", exc, delay)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    def _run(self) -> None:
        next_scan = time.monotonic() + ORPHAN_SCAN_S
        while not self._stopping or not self._queue.empty() or self.spilled:
            if self._queue.empty() and self.spool is not None and self.spool.spilling:
                self._unspill()  # the queue has drained: the spilled events next, oldest first
                continue
            batch: list[Item] = []
            deadline = None
            while len(batch) < self.batch_size:
                wait = None if deadline is None else max(0.0, deadline - time.monotonic())
                if wait is None and self.spool is not None:
                    wait = self.spool.segment_age_s  # idle: wake now and then to retire the spool segment
                try:
                    item = self._queue.get(timeout=wait)
                except queue.Empty:
                    break
                if item is _STOP:
                    self._stopping = True
                    if self._queue.empty():
                        break
                    continue  # late finishers during shutdown: written with the rest
                batch.append(item)
                if deadline is None:
                    deadline = time.monotonic() + self.flush_interval_s
            if batch:
                self._write(batch)
            elif self.spool is not None:
                self.spool.retire_idle()
            if self.spool is not None and time.monotonic() >= next_scan:
                next_scan = time.monotonic() + ORPHAN_SCAN_S
                self._replay_orphans()

    def _write(self, batch: list[Item], dedup: bool = False) -> None:
        """Store one batch (held until it is done, for a restarted thread), then account for it."""
        self._held = batch
        if self.spool is not None:
            self._sync_spool()
        self.store([row for row, _ in batch], dedup)
        self._held = []
        self.written += len(batch)
        if self.spool is not None:
            self.spool.committed(Counter(seg for _, seg in batch if seg is not None))
        self._notify(len(batch))

    def _unspill(self) -> None:
        """Write one batch of the events kept in the spool only while the queue was full."""
        assert self.spool is not None
        batch: list[Item] = []
        for line, seg in self.spool.unspill(self.batch_size):
            try:
                row = orjson.loads(line)
                if not isinstance(row, dict):
                    raise ValueError("not an event row")
            except (orjson.JSONDecodeError, ValueError) as exc:  # never written so; kept aside, not lost
                self.dead_letters.add(f"spilled line unreadable: {exc}", record=line[:4096].decode(errors="replace"))
                self.spool.committed({seg: 1})
                continue
            batch.append((row, seg))
        if batch:
            self._write(batch)

    def store(self, rows: list[dict[str, Any]], dedup: bool = False) -> int:
        """Store `rows` in the calling thread as the writer thread does: retried while the store is
        unavailable, the rows it refuses isolated, degraded and dead-lettered; returns how many the store
        took (with `dedup`, not those it held already). Also for a consumer of the bus (`bus.archive`),
        which acknowledges a batch only once this returns."""
        n = self._insert(rows, dedup)
        if n is None:  # refused for its content: isolate the row(s) at fault
            n = sum(self._insert_one(row, dedup) for row in rows)
        return n

    def _notify(self, n: int) -> None:
        if self.on_written is not None:
            try:
                self.on_written(n, self.depth)
            except Exception:  # noqa: BLE001 - metrics are not worth a stalled log
                self._log.warning("event writer: on_written callback failed", exc_info=True)

    def _sync_spool(self) -> None:
        assert self.spool is not None
        try:
            self.spool.sync()
        except OSError as exc:
            self.spool.errors += 1
            self._log.warning("event spool fsync failed: %s", exc)

    def _insert(self, rows: list[dict[str, Any]], dedup: bool = False) -> int | None:
        """Insert `rows` in one transaction, retrying while the store is unavailable; returns how many were
        inserted, or None if the store refuses them for their content. With `dedup`, rows whose request_id
        the store already holds are skipped (replay, and a batch a failed loop may have half written)."""
        delay = 0.05
        while True:
            try:
                n = self.events.append(rows, skip_present=dedup)
                self.last_error = None
                return n
            except Exception as exc:  # noqa: BLE001 - sorted below: retry, or isolate the row
                if not transient(exc):
                    self._refused = f"{type(exc).__name__}: {exc}"
                    return None
                # Keep the batch and retry: losing the log would blind detection and audits.
                self.last_error = type(exc).__name__
                self._log.warning("event store write failed (%s); retrying in %.2fs", type(exc).__name__, delay)
                if self.spool is not None:
                    self._sync_spool()  # while the store is down, the spool is the only copy
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    def _insert_one(self, row: dict[str, Any], dedup: bool = False) -> int:
        """Store one row the batch insert refused: as it is, else degraded, else without its content;
        what was not stored as it came goes to the dead letters with the error. Returns 1 if stored."""
        n = self._insert([row], dedup)
        if n is not None:
            return n
        error = self._refused
        kept, _ = encodable(row)
        for candidate in (kept, minimal_row(kept, error)):
            if candidate is not row and (n := self._insert([candidate], dedup)) is not None:
                self.dead_letters.add(error, record=kept, request_id=row.get("request_id"))
                return n
        self.dead_letters.add(
            f"{error}; not stored at all: {self._refused}", record=kept, request_id=row.get("request_id")
        )
        return 0

    # -- replay of the spool segments dead processes left ----------------------------------------------

    def _replay_orphans(self) -> None:
        if self.spool is None:
            return
        for path, fd in self.spool.orphans():
            n = self._replay(fd)
            Spool.discard(path, fd)
            if n:
                log.warning(
                    "event spool: restored %d events from %s (a process ended before storing them)", n, path.name
                )

    def _replay(self, fd: int) -> int:
        """Store the events of one locked segment that the store lacks; returns how many were missing."""
        before = self.written
        chunk: list[dict[str, Any]] = []
        for line in read_lines(fd):
            try:
                row = orjson.loads(line)
                if (
                    not isinstance(row, dict)
                    or not isinstance(row.get("request_id"), str)
                    or isinstance(row.get("ts"), bool)
                    or not isinstance(row.get("ts"), (int, float))
                ):
                    raise ValueError("not an event row")
            except (orjson.JSONDecodeError, ValueError) as exc:  # e.g. a line torn by a machine crash
                self.dead_letters.add(f"spool line unreadable: {exc}", record=line[:4096].decode(errors="replace"))
                continue
            chunk.append(row)
            if len(chunk) >= self.batch_size:
                self._restore(chunk)
                chunk = []
        if chunk:
            self._restore(chunk)
        return self.written - before

    def _restore(self, rows: list[dict[str, Any]]) -> None:
        n = self._insert(rows, dedup=True)
        if n is None:
            todo = self.events.missing(rows)
            for row in todo:
                self._insert_one(row, dedup=True)
            n = len(todo)
        if not n:
            return
        self.written += n
        self.replayed += n
        self._notify(n)
