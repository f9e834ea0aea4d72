"""The archive writer: a durable JetStream consumer that stores the whole event stream in SQL and/or Parquet.

    cuirass events archive [--sql/--no-sql] [--parquet DIR] [--batch N]

It fetches a batch, writes it to every target, makes the writes durable (a committed SQL transaction; a
Parquet file fsynced and renamed into place), and only then acknowledges the batch. A crash, a `kill -9` or
a lost acknowledgement therefore loses nothing: the server delivers the unacknowledged messages again,
to this process or the next one on the same durable consumer. What makes the redelivery harmless:

- SQL: `SqlEventLog.append(rows, skip_present=True)` skips the request ids the table already holds.
- Parquet: a batch is cut into runs of consecutive stream sequences, and each run is written as one file
  per day it touches, `day=YYYY-MM-DD/part-<first>-<last>.parquet`, holding every message of that day
  in the run. On start the archive lists the names; a redelivered message is written again only if no
  file of its day names a run that contains its sequence. A run ends at a gap in the sequences, so a
  name never claims a message that another process on the consumer still holds unacknowledged; the
  names are listed again before a redelivered batch, which another process may have written.

So each stream message is stored once in each target. A message the stream holds twice (the same
request id published again after the stream's duplicate window, e.g. a spool replayed long after a
crash) is two messages: SQL keeps one (request id), Parquet keeps both, and readers may drop duplicate
request ids (docs/fleet.md).
"""

from __future__ import annotations

import bisect
import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from cuirass.bus.base import BusUnavailable
from cuirass.bus.jetstream import Connection, decode, subject_prefix
from cuirass.events import parquet
from cuirass.events.deadletter import DeadLetters
from cuirass.events.log import Row
from cuirass.events.writer import EventWriter

log = logging.getLogger("cuirass.archive")

ACK_WAIT_S = 30.0  # a batch not acknowledged by then is delivered again (a write slower than this repeats)
FETCH_WAIT_S = 1.0  # how long one fetch waits for messages: also how soon a stop request is seen


@dataclasses.dataclass
class Stats:
    """What the archive has done since it started (the progress lines and the summary)."""

    messages: int = 0  # stream messages acknowledged
    sql_new: int = 0  # rows the SQL log did not hold yet
    parquet_rows: int = 0
    parquet_files: int = 0
    parquet_skipped: int = 0  # redelivered messages a Parquet file already held
    dead_letters: int = 0
    last_seq: int = 0  # the newest stream sequence acknowledged
    started: float = dataclasses.field(default_factory=time.monotonic)

    def as_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["seconds"] = round(time.monotonic() - out.pop("started"), 3)
        return out


class ParquetTarget:
    """The Parquet side: one file per day of each contiguous run of stream sequences, named by the run."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._runs: dict[str, list[tuple[int, int]]] = {}  # day -> (first, last) of its files, sorted
        self.swept = parquet.sweep(root)  # what an archive killed mid-file left
        self.refresh()

    def refresh(self) -> None:
        """List the files' names again (at start, and before a redelivery: another archive process on the
        same consumer may have written the batch before it died)."""
        runs: dict[str, list[tuple[int, int]]] = {}
        for path in parquet.files(self.root):
            run = _run_of(path)
            if run is not None:
                bisect.insort(runs.setdefault(path.parent.name.removeprefix("day="), []), run)
        self._runs = runs

    def holds(self, seq: int, day: str) -> bool:
        """Whether a file of `day` holds stream message `seq`: a file of a day holds every message of that
        day from its run, so finding the run in the day's names is enough."""
        runs = self._runs.get(day, [])
        i = bisect.bisect_right(runs, (seq, float("inf"))) - 1
        return i >= 0 and runs[i][0] <= seq <= runs[i][1]

    def write(self, batch: list[tuple[int, Row]]) -> tuple[int, int]:
        """Write the messages of `batch` (those no file holds yet); returns (rows, files) written."""
        runs: list[list[tuple[int, Row]]] = []
        for seq, row in sorted(batch, key=lambda m: m[0]):
            if not runs or seq != runs[-1][-1][0] + 1:  # a gap: a name must not claim what it lacks
                runs.append([])
            runs[-1].append((seq, row))
        rows = files = 0
        for run in runs:
            first, last = run[0][0], run[-1][0]
            for day, part in parquet.by_day(row for _, row in run).items():
                parquet.write(parquet.day_dir(self.root, day) / f"part-{first:020d}-{last:020d}.parquet", part)
                bisect.insort(self._runs.setdefault(day, []), (first, last))
                rows, files = rows + len(part), files + 1
        return rows, files


def _run_of(path: Path) -> tuple[int, int] | None:
    parts = path.stem.split("-")
    if len(parts) == 3 and parts[0] == "part" and parts[1].isdigit() and parts[2].isdigit():
        return int(parts[1]), int(parts[2])
    return None  # not an archive file (an export, say): it claims no sequence


class Archiver:
    """The consumer loop: fetch, write to the targets, acknowledge; `run` until stopped."""

    def __init__(
        self,
        conn: Connection,
        *,
        sql: EventWriter | None,
        parquet_target: ParquetTarget | None,
        dead_letters: DeadLetters,
        durable: str = "cuirass-archive",
        batch: int = 1000,
        ack_wait_s: float = ACK_WAIT_S,
    ) -> None:
        if sql is None and parquet_target is None:
            raise ValueError("the archive needs a target: SQL, Parquet or both")
        self.conn = conn
        self.sql = sql
        self.parquet = parquet_target
        self.dead_letters = dead_letters
        self.durable = durable
        self.batch = batch
        self.ack_wait_s = ack_wait_s
        self.stats = Stats()
        self._sub: Any = None

    async def _subscribe(self) -> Any:
        if self._sub is None:
            js = await self.conn.js()
            config = ConsumerConfig(
                durable_name=self.durable,
                deliver_policy=DeliverPolicy.ALL,
                ack_policy=AckPolicy.EXPLICIT,
                ack_wait=self.ack_wait_s,
                max_ack_pending=max(10_000, 2 * self.batch),
            )
            subjects = f"{subject_prefix(self.conn.stream)}.>"
            self._sub = await js.pull_subscribe(subjects, self.durable, self.conn.stream, config=config)
        return self._sub

    def _fetch(self) -> list[Any]:
        async def fetch() -> list[Any]:
            sub = await self._subscribe()
            try:
                return list(await sub.fetch(self.batch, timeout=FETCH_WAIT_S))
            except TimeoutError:
                return []  # nothing new (nats-py's fetch timeout is a TimeoutError)

        return self.conn.call(fetch, FETCH_WAIT_S + 10)

    def backlog(self) -> int:
        """Messages the consumer has still to deliver, or delivered without an acknowledgement (those a
        killed archive held: delivered again once their ack wait has passed)."""

        async def info() -> int:
            ci = await (await self._subscribe()).consumer_info()
            return int(ci.num_pending or 0) + int(ci.num_ack_pending or 0)

        return self.conn.call(info, 10)

    def close(self) -> None:
        """Let go of the subscription, then the connection (the consumer and its position stay)."""

        async def unsubscribe() -> None:
            if self._sub is not None:
                await self._sub.unsubscribe()

        try:
            self.conn.call(unsubscribe, 5)
        except BusUnavailable:
            pass
        self.conn.close()

    def _ack(self, msgs: list[Any]) -> None:
        async def ack() -> None:
            for m in msgs:
                await m.ack()
            await (await self.conn.nc()).flush(5)

        self.conn.call(ack, 15)

    def step(self) -> int:
        """One batch: fetched, stored durably, acknowledged. Returns how many messages it held."""
        msgs = self._fetch()
        if not msgs:
            return 0
        batch: list[tuple[int, Row]] = []
        for m in msgs:
            seq = int(m.metadata.sequence.stream)
            try:
                row = decode(m.data)
                if not isinstance(row.get("request_id"), str) or not isinstance(row.get("ts"), (int, float)):
                    raise ValueError("not an event row")
            except ValueError as exc:  # orjson's decode error is a ValueError too: kept aside, acknowledged
                self.dead_letters.add(f"bus message unreadable: {exc}", record=m.data[:4096].decode(errors="replace"))
                self.stats.dead_letters += 1
                continue
            batch.append((seq, row))
        if self.sql is not None and batch:
            self.stats.sql_new += self.sql.store([row for _, row in batch], dedup=True)
        if self.parquet is not None:
            if any(m.metadata.num_delivered > 1 for m in msgs):
                self.parquet.refresh()
            todo = [(s, r) for s, r in batch if not self.parquet.holds(s, parquet.day_of(float(r["ts"])))]
            self.stats.parquet_skipped += len(batch) - len(todo)
            self._retry(lambda: self._write_parquet(todo))
        self._ack(msgs)
        self.stats.messages += len(msgs)
        self.stats.last_seq = max(self.stats.last_seq, *(int(m.metadata.sequence.stream) for m in msgs))
        return len(msgs)

    def _write_parquet(self, todo: list[tuple[int, Row]]) -> None:
        assert self.parquet is not None
        rows, files = self.parquet.write(todo)
        self.stats.parquet_rows += rows
        self.stats.parquet_files += files

    @staticmethod
    def _retry(write: Callable[[], None]) -> None:
        """A disk that fails (full, read-only for a while) holds the batch unacknowledged until it works."""
        delay = 0.5
        while True:
            try:
                write()
                return
            except OSError as exc:
                log.warning("archive: Parquet write failed (%s); retrying in %.1fs", exc, delay)
                time.sleep(delay)
                delay = min(delay * 2, 10.0)

    def run(
        self,
        stop: threading.Event,
        *,
        until_idle_s: float | None = None,
        progress: Callable[[Stats], None] | None = None,
        progress_every_s: float = 5.0,
    ) -> Stats:
        """Archive until `stop` is set (or, with `until_idle_s`, until nothing arrived for that long and the
        consumer has nothing pending).
        A bus that is down is waited for; the batch in hand is finished before returning."""
        idle_since = time.monotonic()
        next_progress = time.monotonic() + progress_every_s
        delay = 0.5
        while not stop.is_set():
            try:
                n = self.step()
                delay = 0.5
            except BusUnavailable as exc:
                log.warning("archive: bus unavailable (%s); retrying in %.1fs", exc, delay)
                stop.wait(delay)
                delay = min(delay * 2, 5.0)
                n = 0
            now = time.monotonic()
            if n:
                idle_since = now
            elif until_idle_s is not None and now - idle_since >= until_idle_s:
                try:
                    if self.backlog() == 0:  # everything in the stream is archived
                        break
                except BusUnavailable:
                    pass
                idle_since = now
            if progress is not None and now >= next_progress:
                next_progress = now + progress_every_s
                progress(self.stats)
        return self.stats
