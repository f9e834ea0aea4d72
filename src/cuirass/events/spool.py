"""The event spool: every event is appended to a local file before its response completes.

The writer moves events to the store in batches, so without it a `kill -9` (or an OOM kill) of a
gateway process loses the batch held in memory. With it, the answer a client received always has a
copy on disk, and the next gateway to start replays what the store lacks.

Format: JSON lines, one stored row (`events.store.to_row`) per line, in segment files
`<data dir>/spool/<pid>-<start ms>-<n>.jsonl`, one series per process (so any number of `--workers`
append without sharing a file). A process writes each line with one `write(2)` into the page cache
(no user-space buffer a crash could lose), rotates to a new segment past `segment_bytes` or
`segment_age_s`, and deletes a rotated segment once the writer has committed all its events.

Ownership is an exclusive `flock` on each segment, held by its process until the segment is deleted;
the kernel drops it when the process dies, however it dies. A segment nobody holds belongs to a dead
process: `orphans` hands it, locked, to one replayer, so two processes never replay the same segment.

The spill. The writer's in-memory queue is bounded (`events.queue_max`): past it, `append(...,
overflow=True)` starts the spill, and from then on every event is kept in the spool only (the writer
does not queue it). The writer reads those lines back with `unspill`, in the order they were appended,
once its queue has drained; the spill ends when it has read up to the newest line, and events are queued
again. Memory then holds at most `queue_max` events however long the store (or the bus) is away; the
disk holds the rest, as it already did.

fsync policy (`events.spool_fsync`): a process crash never loses a written line, whatever the policy,
since the kernel still holds it; the policy is about machine crashes and power loss.
- `none`: never fsync; a machine crash may lose the events the store had not committed yet.
- `batch` (default): the writer fsyncs the spool each time it takes a batch, before the store write,
  so a machine crash loses at most the events answered in the last flush interval.
- `always`: fsync each line before the response is sent; nothing answered is lost even to a power
  cut, at the cost of one disk flush per request on the hot path.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Literal

FsyncPolicy = Literal["none", "batch", "always"]
_datasync = getattr(os, "fdatasync", os.fsync)  # macOS has no fdatasync

log = logging.getLogger("cuirass.events")


class Segment:
    """One spool file this process appends to, and how many of its events the store holds."""

    __slots__ = ("path", "fd", "appended", "committed", "closed", "dirty", "born", "size", "_read_fd")

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self.fd = fd
        self._read_fd: int | None = None  # opened to read spilled lines back (`Spool.unspill`)
        self.appended = 0
        self.committed = 0
        self.closed = False  # no more appends: deleted once committed == appended
        self.dirty = False  # written since the last fsync
        self.born = time.monotonic()
        self.size = 0

    def fd_read(self) -> int:
        if self._read_fd is None:
            self._read_fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        return self._read_fd

    def release(self) -> None:
        """Close the file descriptors (the flock goes with the last of them)."""
        if self._read_fd is not None:
            os.close(self._read_fd)
            self._read_fd = None
        os.close(self.fd)


class Spool:
    """This process's spool segments in `directory`; `append` runs on the hot path, the rest in the writer."""

    def __init__(
        self, directory: Path, fsync: FsyncPolicy = "batch", segment_bytes: int = 8 << 20, segment_age_s: float = 60.0
    ) -> None:
        self.directory = directory
        self.fsync = fsync
        self.segment_bytes = segment_bytes
        self.segment_age_s = segment_age_s
        self.errors = 0  # appends that failed (full disk, ...): those events are in memory only
        self._current: Segment | None = None
        self._segments: list[Segment] = []  # open: the current one and rotated ones not yet committed
        self._made = 0
        self._lock = threading.Lock()
        self._spill: tuple[Segment, int] | None = None  # where the unread spilled lines start
        self.spilled = 0  # lines in the spool only, not yet read back by the writer

    @property
    def spilling(self) -> bool:
        return self._spill is not None

    def append(self, line: bytes, overflow: bool = False) -> tuple[Segment, bool]:
        """Write one encoded line (ending in a newline) to the current segment; OSError if the disk fails.
        Returns the segment and whether the line is spilled (the caller must not queue it): it is while a
        spill runs, and `overflow` (the caller's queue is full) starts one."""
        with self._lock:
            seg = self._current
            if (
                seg is None
                or seg.size >= self.segment_bytes
                or (seg.appended and time.monotonic() - seg.born >= self.segment_age_s)
            ):
                seg = self._rotate()
            view = memoryview(line)
            try:
                while view:
                    view = view[os.write(seg.fd, view) :]
            except OSError:
                seg.closed, self._current = True, None  # a torn line ends this segment: the next starts clean
                raise
            spilled = overflow or self._spill is not None
            if spilled:
                if self._spill is None:
                    self._spill = (seg, seg.size)
                self.spilled += 1
            seg.appended += 1
            seg.size += len(line)
            if self.fsync == "always":
                _datasync(seg.fd)
            else:
                seg.dirty = True
            return seg, spilled

    def unspill(self, limit: int, max_bytes: int = 4 << 20) -> list[tuple[bytes, Segment]]:
        """Up to `limit` spilled lines (without their newline), oldest first, each with its segment (the
        writer thread). Reaching the newest line ends the spill: the caller queues events again."""
        out: list[tuple[bytes, Segment]] = []
        while len(out) < limit:
            with self._lock:
                if self._spill is None:
                    return out
                seg, pos = self._spill
                if pos >= seg.size:  # this segment is read up: on to the next one, or the spill is over
                    i = self._segments.index(seg)
                    if i + 1 < len(self._segments):
                        self._spill = (self._segments[i + 1], 0)
                    else:
                        self._spill = None
                    continue
                end = min(seg.size, pos + max_bytes)
            # Lines up to `size` are whole (appends update it after their write), and unread spilled
            # lines are not committed, so the segment is neither deleted nor closed under us.
            chunk = os.pread(seg.fd_read(), end - pos, pos)
            cut = chunk.rfind(b"\n") + 1
            if not cut:  # one line longer than max_bytes: read it whole
                chunk = os.pread(seg.fd_read(), seg.size - pos, pos)
                cut = chunk.find(b"\n") + 1
            lines = chunk[:cut].split(b"\n")[:-1][: limit - len(out)]
            pos += sum(len(line) + 1 for line in lines)
            with self._lock:
                self._spill = (seg, pos)
                self.spilled -= len(lines)
            out.extend((line, seg) for line in lines)
        return out

    def _rotate(self) -> Segment:
        if self._current is not None:
            self._current.closed = True
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._made += 1
        name = f"{os.getpid()}-{int(time.time() * 1000)}-{self._made:06d}.jsonl"
        # Created under a name replay ignores, locked, then renamed: no replayer can take it in between.
        tmp = self.directory / f".{name}.new"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.rename(tmp, self.directory / name)
        seg = Segment(self.directory / name, fd)
        self._segments.append(seg)
        self._current = seg
        return seg

    def sync(self) -> None:
        """fsync every segment written since the last call (the `batch` policy; the writer thread)."""
        if self.fsync != "batch":
            return
        with self._lock:
            dirty = [s for s in self._segments if s.dirty]
            for s in dirty:
                s.dirty = False  # cleared first: a line appended during the fsync marks it again
        for s in dirty:
            _datasync(s.fd)  # only the writer thread closes segments, so the fd stays valid

    def committed(self, counts: Mapping[Segment, int]) -> None:
        """Record that the store now holds `counts[segment]` more events of each segment; delete the
        rotated segments it completes (the writer thread)."""
        with self._lock:
            for seg, n in counts.items():
                seg.committed += n
            done = [s for s in self._segments if s.closed and s.committed >= s.appended]
            for s in done:
                self._segments.remove(s)
        for s in done:
            _unlink(s.path)
            s.release()

    def retire_idle(self) -> None:
        """Close the current segment once it is old and wholly committed, so a quiet gateway keeps no
        stale file (the writer thread)."""
        with self._lock:
            seg = self._current
            if seg is None or seg.committed < seg.appended or time.monotonic() - seg.born < self.segment_age_s:
                return
            seg.closed = True
            self._current = None
        self.committed({})

    @property
    def segments(self) -> int:
        return len(self._segments)

    def orphans(self) -> Iterator[tuple[Path, int]]:
        """Segments left by processes that died, each yielded locked as (path, read fd); the caller replays
        it and then calls `discard`. A segment another process holds or already replays is skipped."""
        try:
            names = sorted(os.listdir(self.directory))
        except FileNotFoundError:
            return
        for name in names:
            if not name.endswith(".jsonl") or name.startswith("."):
                continue
            path = self.directory / name
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                continue  # deleted meanwhile by its owner or another replayer
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # fails while a live process holds it
            except BlockingIOError:
                os.close(fd)
                continue
            if os.fstat(fd).st_nlink == 0:  # replayed and deleted between our open and our lock
                os.close(fd)
                continue
            yield path, fd

    @staticmethod
    def discard(path: Path, fd: int) -> None:
        """Delete a replayed orphan segment and release it."""
        _delete(path, fd)

    def close(self) -> None:
        """Stop appending; delete the segments whose events are all in the store and let go of the others,
        which the next start replays."""
        with self._lock:
            segs, self._segments, self._current, self._spill = self._segments, [], None, None
        for s in segs:
            if s.committed >= s.appended:
                _unlink(s.path)
            else:
                log.warning(
                    "event spool: %s keeps %d events the store lacks; the next start replays them",
                    s.path.name,
                    s.appended - s.committed,
                )
            s.release()


def read_lines(fd: int) -> Iterator[bytes]:
    """The lines of an open segment, without their newline (a torn last line comes out as it is)."""
    with os.fdopen(os.dup(fd), "rb") as fh:
        for line in fh:
            line = line.rstrip(b"\n")
            if line:
                yield line


def _unlink(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _delete(path: Path, fd: int) -> None:
    try:
        _unlink(path)
    finally:
        os.close(fd)
