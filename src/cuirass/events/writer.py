"""The batching background writer: the hot path hands over an event in O(1); a thread writes batches.

Nothing is dropped. If the database is unavailable the writer keeps the batch and retries with backoff;
the queue then grows, `/health/readiness` turns unready once it passes `queue_max`, and `/metrics`
shows the depth, so an operator (or a load balancer) sees it before memory does.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from cuirass.events.record import Event
from cuirass.events.store import insert_rows, to_row

log = logging.getLogger("cuirass.events")

_STOP = object()


class EventWriter:
    def __init__(
        self,
        engine: sa.Engine,
        *,
        retention: str = "full",
        batch_size: int = 512,
        flush_interval_s: float = 0.25,
        queue_max: int = 200_000,
        on_written: Callable[[int, int], None] | None = None,
    ) -> None:
        self.engine = engine
        self.retention = retention
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.queue_max = queue_max
        self.on_written = on_written  # (events written, queue depth), e.g. for metrics
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="cuirass-event-writer", daemon=True)
        self.written = 0
        self.last_error: str | None = None
        self._started = False

    def start(self) -> None:
        if not self._started:
            self._started = True
            self._thread.start()

    def submit(self, event: Event) -> None:
        """Queue one event; never blocks, never raises."""
        self._queue.put(event)

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    @property
    def healthy(self) -> bool:
        return self.last_error is None and self.depth <= self.queue_max

    def close(self, timeout: float = 30.0) -> None:
        """Flush everything queued so far and stop the thread."""
        if not self._started:
            return
        self._queue.put(_STOP)
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.error("event writer did not finish within %.0fs; %d events still queued", timeout, self.depth)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            batch: list[Event] = []
            deadline = None
            while len(batch) < self.batch_size:
                wait = None if deadline is None else max(0.0, deadline - time.monotonic())
                try:
                    item = self._queue.get(timeout=wait)
                except queue.Empty:
                    break
                if item is _STOP:
                    stopping = True
                    break
                batch.append(item)
                if deadline is None:
                    deadline = time.monotonic() + self.flush_interval_s
            if batch:
                self._write(batch)
        # Drain whatever arrived after the stop marker (late finishers during shutdown).
        rest: list[Event] = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not _STOP:
                rest.append(item)
        if rest:
            self._write(rest)

    def _write(self, batch: list[Event]) -> None:
        rows = [to_row(e, self.retention) for e in batch]
        delay = 0.05
        while True:
            try:
                with self.engine.begin() as conn:
                    insert_rows(conn, rows)
                self.written += len(rows)
                self.last_error = None
                if self.on_written is not None:
                    self.on_written(len(rows), self.depth)
                return
            except sa.exc.SQLAlchemyError as exc:
                # Keep the batch and retry: losing the log would blind detection and audits.
                self.last_error = type(exc).__name__
                log.warning("event store write failed (%s); retrying in %.2fs", type(exc).__name__, delay)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
