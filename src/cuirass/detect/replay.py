"""Offline replay: run the gateway's Detector over an event log, in event-time order, causally.

Each event is digested as it is read (the text is dropped), the digests are sorted by event
time (stable: equal times keep input order), then fed to a Detector exactly as a gateway
would: before each event the campaign job runs if `campaign_interval_s` of event time has
passed, so a verdict at time t uses only events with ts <= t, and `first_flagged_ts` says
how much was harvested before the account was caught. Jobs run on a fixed grid of event time
only (none is added at the end of the input), so replaying a prefix of a log gives exactly
the verdicts the whole log gave up to that time. No randomness is unseeded: the same input
gives the same report.
"""

from __future__ import annotations

import contextlib
import gc
import operator
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from cuirass.detect.digest import Digest, digest
from cuirass.detect.engine import DEFAULT_CAMPAIGN_INTERVAL_S, DEFAULT_CAMPAIGN_WINDOW_S, Detector
from cuirass.events.record import Event

Progress = Callable[[int], None]


def digests(events: Iterable[Event], progress: Progress | None = None) -> list[Digest]:
    """Digest every event and sort by event time (stable)."""
    with _no_cyclic_gc():
        return _digests(events, progress)


def _digests(events: Iterable[Event], progress: Progress | None) -> list[Digest]:
    out = []
    append = out.append
    for i, event in enumerate(events, 1):
        append(digest(event))
        if progress is not None and i % 10_000 == 0:
            progress(10_000)
    if progress is not None:
        progress(len(out) % 10_000)
    out.sort(key=operator.attrgetter("ts"))
    return out


@contextlib.contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector: with millions of live digests every full collection
    walks them all, for nothing (detector state holds no reference cycles)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def run(detector: Detector, ordered: Iterable[Digest], progress: Progress | None = None) -> Detector:
    """Feed time-ordered digests to a detector, running the campaign job on schedule."""
    with _no_cyclic_gc():
        return _run(detector, ordered, progress)


def _run(detector: Detector, ordered: Iterable[Digest], progress: Progress | None) -> Detector:
    last = None
    count = 0
    for d in ordered:
        if last is not None and d.ts < last:
            raise ValueError(f"events out of time order at ts={d.ts} (after {last})")
        last = d.ts
        detector.maybe_run_campaigns(d.ts)
        detector.observe_digest(d)
        count += 1
        if progress is not None and count % 10_000 == 0:
            progress(10_000)
    if progress is not None:
        progress(count % 10_000)
    return detector


def replay(events: Iterable[Event], *, calibration: Mapping[str, Any] | None = None,
           campaign_interval_s: float = DEFAULT_CAMPAIGN_INTERVAL_S,
           campaign_window_s: float = DEFAULT_CAMPAIGN_WINDOW_S, presorted: bool = False,
           progress: Progress | None = None) -> dict[str, Any]:
    """Replay events (any order unless `presorted`) and return the detection report (docs/architecture.md).

    With `presorted=True` events are streamed without being held in memory (for logs too
    big to buffer); an event earlier than its predecessor then raises ValueError.
    """
    detector = Detector(calibration, campaign_interval_s=campaign_interval_s, campaign_window_s=campaign_window_s)
    ordered: Iterable[Digest] = (digest(e) for e in events) if presorted else digests(events)
    return run(detector, ordered, progress).report()
