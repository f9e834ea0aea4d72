"""Digest an event log in several processes while this one scores it.

Digesting (digest.py) is the costliest step of a replay, half of its time, and a pure function of
one event. So `digest_log` cuts the log into spans of whole lines (`events.formats.spans`), has a
pool of processes read and digest them (each opens the file itself: only offsets and digests cross
between processes), and hands the digests back in file order, exactly as reading and digesting the
file in one process would. The replay then sorts them (or streams them, `--presorted`) and scores
them in this process: the detector's state is one object and stays here.

What reading found (malformed or ignored records, fields a foreign log lacks) is merged span by span
into the caller's `Reading`; an event that cannot be digested reaches `on_skip` as it would in one
process; with `strict`, the first malformed line stops the replay with the same message, naming its
line, after the digests of the lines before it.
"""

from __future__ import annotations

import dataclasses
import itertools
import multiprocessing
import os
import pickle
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path

from cuirass.detect.digest import HISTORY_PROMPT_CACHE, Digest, cache_prompts, digest
from cuirass.events.formats import Options, Reading, Span, read, spans
from cuirass.events.record import Event

SPAN_BYTES = 4 << 20  # one task: about 2,000 events of a typical log
# Spans in flight per process, which bounds the digests held but not yet taken (about 1 MB a span). While the
# scoring process runs a campaign job (seconds, with tens of thousands of accounts in its window) it takes no
# digests, and the digesting processes go on only as far as this lets them.
AHEAD = 32
WATCH_S = 1.0  # how often a digesting process checks that its parent is alive
MAX_DEFAULT_JOBS = 4  # two digesting processes keep about level with the scoring one; a few more add nothing
# Digesting processes run this much nicer than the scoring process, the one that bounds a replay: it keeps a core
# whenever it has digests to score, and the digesting processes take every other cycle (on 2 cores, 1.1x the
# events/s of an even share of the cores; BENCHMARKS.md, "History on one machine").
NICE = 10

Skip = Callable[[Event, Exception], None]


@dataclasses.dataclass(slots=True)
class _Digested:
    """What a process returns for one span."""

    span: Span
    digests: list[Digest]
    reading: Reading
    skipped: list[tuple[Event, Exception]]  # events that could not be digested
    error: str | None = None  # strict reading stopped here


def default_jobs() -> int:
    """Digesting processes by default: one per core this process may use, at most MAX_DEFAULT_JOBS, none on one
    core (the scoring process digests). They run at a lower priority (NICE), so on 2 cores two of them share
    the core the scoring process leaves and fill its waits (BENCHMARKS.md, "History on one machine")."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return 0 if cores < 2 else min(cores, MAX_DEFAULT_JOBS)


def _digest_span(path: Path, fmt: str, options: Options | None, strict: bool, span: Span) -> _Digested:
    reading = Reading(fmt)
    out: list[Digest] = []
    skipped: list[tuple[Event, Exception]] = []
    error = None
    try:
        out.extend(digested(read(path, reading, options, strict=strict, span=span), _keep(skipped), [0]))
    except ValueError as exc:  # strict: a malformed line ends the log here
        error = str(exc)
    return _Digested(span, out, reading, skipped, error)


def _start_digesting(parent: int) -> None:
    """In a new digesting process: lower its priority (NICE), keep a history's worth of prompts
    (HISTORY_PROMPT_CACHE), and exit once the process that started it is gone. A pool's processes wait on a
    queue that never closes when their parent is killed (kill -9, or a SIGTERM that skips clean-up)."""
    cache_prompts(HISTORY_PROMPT_CACHE)
    try:
        os.nice(NICE)
    except OSError:  # a system that refuses it: the same result, only an even share of the cores
        pass

    def watch() -> None:
        while True:
            time.sleep(WATCH_S)
            try:
                os.kill(parent, 0)
            except (ProcessLookupError, PermissionError):  # gone (or its pid reused by another user's process)
                os._exit(1)

    threading.Thread(target=watch, name="cuirass-watch-parent", daemon=True).start()


def _keep(skipped: list[tuple[Event, Exception]]) -> Skip:
    return lambda event, exc: skipped.append((event, _portable(exc)))


def _portable(exc: Exception) -> Exception:
    """The exception, or one with its type's name and message when it would not survive the trip back."""
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:  # noqa: BLE001 - any exception type may arrive here
        return RuntimeError(f"{type(exc).__name__}: {exc}")
    return exc


def digest_log(
    path: Path,
    reading: Reading,
    options: Options | None = None,
    *,
    jobs: int,
    strict: bool = False,
    progress: Callable[[int], object] | None = None,
    on_bad: Callable[[str], None] | None = None,
    on_skip: Skip | None = None,
    skipped: list[int] | None = None,
) -> Iterator[Digest]:
    """The digests of every event of a log, in file order, computed by `jobs` processes (in this one when
    `jobs` is 0 or the log is a single span, which then keeps HISTORY_PROMPT_CACHE prompts from now on).
    Malformed records as `events.formats.read` treats them (merged into `reading`; `strict` raises
    ValueError); events that cannot be digested go to `on_skip` and are counted in `skipped[0]`."""
    counter = skipped if skipped is not None else [0]
    cut = spans(path, SPAN_BYTES)
    head = list(itertools.islice(cut, 2))
    pool = _pool(jobs) if len(head) == 2 else None
    if pool is None:
        cache_prompts(HISTORY_PROMPT_CACHE)
        events = read(path, reading, options, strict=strict, progress=progress, on_bad=on_bad)
        yield from digested(events, on_skip, counter)
        return
    todo = itertools.chain(head, cut)
    with pool:
        pending: deque[Future[_Digested]] = deque()

        def submit() -> None:
            span = next(todo, None)
            if span is not None:
                pending.append(pool.submit(_digest_span, path, reading.format, options, strict, span))

        for _ in range(AHEAD * jobs):
            submit()
        try:
            while pending:
                done = pending.popleft().result()
                submit()
                reading.merge(done.reading, on_bad)
                for event, exc in done.skipped:
                    counter[0] += 1
                    if on_skip is not None:
                        on_skip(event, exc)
                yield from done.digests
                if progress is not None:
                    progress(done.span.end - done.span.start)
                if done.error is not None:
                    raise ValueError(done.error)
        finally:
            for future in pending:
                future.cancel()


def _pool(jobs: int) -> ProcessPoolExecutor | None:
    """A pool of `jobs` digesting processes; None for none, or where this system cannot make one (e.g. a
    container without /dev/shm for its locks): the scoring process then digests."""
    if jobs < 1:
        return None
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    try:
        return ProcessPoolExecutor(jobs, mp_context=context, initializer=_start_digesting, initargs=(os.getpid(),))
    except OSError:
        return None


def digested(events: Iterable[Event], on_skip: Skip | None, skipped: list[int]) -> Iterator[Digest]:
    """Digest each event; one that raises is skipped (handed to `on_skip`, counted in `skipped[0]`)."""
    for event in events:
        try:
            yield digest(event)
        except Exception as exc:  # noqa: BLE001 - one malformed record must not stop the replay
            skipped[0] += 1
            if on_skip is not None:
                on_skip(event, exc)
