"""Offline replay: run the gateway's Detector over an event log, in event-time order, causally.

Each event is digested as it is read (the text is dropped), the digests are sorted by event
time (stable: equal times keep input order), then fed to a Detector exactly as a gateway
would: before each event the campaign job runs if `campaign_interval_s` of event time has
passed, so a verdict at time t uses only events with ts <= t, and `first_flagged_ts` says
how much was harvested before the account was caught. Jobs run on a fixed grid of event time
only (none is added at the end of the input), so replaying a prefix of a log gives exactly
the verdicts the whole log gave up to that time. No randomness is unseeded: the same input
gives the same report. An event that cannot be digested is skipped, handed to `on_skip`, and
counted in the summary (`skipped`): a bad record in a log must not cost the report of the rest.
"""

from __future__ import annotations

import contextlib
import gc
import math
import operator
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from cuirass.detect.campaigns import KnownNetwork
from cuirass.detect.digest import Digest
from cuirass.detect.engine import DEFAULT_CAMPAIGN_INTERVAL_S, DEFAULT_CAMPAIGN_WINDOW_S, Detector
from cuirass.detect.parallel import Skip, digested
from cuirass.events.record import Event

Progress = Callable[[int], object]


def digests(
    events: Iterable[Event],
    progress: Progress | None = None,
    on_skip: Skip | None = None,
    skipped: list[int] | None = None,
) -> list[Digest]:
    """Digest every event and sort by event time (stable); events that cannot be digested are skipped."""
    with _no_cyclic_gc():
        return _digests(digested(events, on_skip, skipped if skipped is not None else [0]), progress)


def in_time_order(digested: Iterable[Digest]) -> list[Digest]:
    """Digests (in file order, e.g. from parallel.digest_log) sorted by event time (stable)."""
    with _no_cyclic_gc():
        return _digests(digested, None)


def _digests(digested: Iterable[Digest], progress: Progress | None) -> list[Digest]:
    out: list[Digest] = []
    append = out.append
    for i, d in enumerate(digested, 1):
        append(d)
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


def replay_detector(
    events: Iterable[Event],
    *,
    calibration: Mapping[str, Any] | None = None,
    campaign_interval_s: float = DEFAULT_CAMPAIGN_INTERVAL_S,
    campaign_window_s: float = DEFAULT_CAMPAIGN_WINDOW_S,
    presorted: bool = False,
    progress: Progress | None = None,
    on_skip: Skip | None = None,
    known: Sequence[KnownNetwork] = (),
) -> tuple[Detector, int]:
    """Replay events into a fresh detector that remembers the `known` networks (Detector.remember); return it
    and the number of events skipped. `replay` is this plus the report."""
    skipped = [0]
    detector = detect(
        digested(events, on_skip, skipped),
        calibration=calibration,
        campaign_interval_s=campaign_interval_s,
        campaign_window_s=campaign_window_s,
        presorted=presorted,
        progress=progress,
        known=known,
    )
    return detector, skipped[0]


def detect(
    digested: Iterable[Digest],
    *,
    calibration: Mapping[str, Any] | None = None,
    campaign_interval_s: float = DEFAULT_CAMPAIGN_INTERVAL_S,
    campaign_window_s: float = DEFAULT_CAMPAIGN_WINDOW_S,
    presorted: bool = False,
    progress: Progress | None = None,
    known: Sequence[KnownNetwork] = (),
    overlap: bool = False,
) -> Detector:
    """Digests in file order (e.g. parallel.digest_log) into a fresh detector, in event-time order.

    With `presorted` they are streamed (one out of order raises ValueError). Otherwise they are all kept,
    sorted by event time (stable) and scored. With `overlap` (when other processes digest), they are scored
    while they arrive in order, so that scoring overlaps digesting (logs are usually appended in time); the
    first one out of order drops that detector, and the kept digests are sorted and scored from the start:
    the same detector either way."""

    def fresh() -> Detector:
        detector = Detector(calibration, campaign_interval_s=campaign_interval_s, campaign_window_s=campaign_window_s)
        detector.remember(known)
        return detector

    if presorted:
        return run(fresh(), digested, progress)
    if not overlap:
        return run(fresh(), in_time_order(digested), progress)
    with _no_cyclic_gc():
        kept: list[Digest] = []
        live: Detector | None = fresh()
        last = -math.inf
        for d in digested:
            kept.append(d)
            if live is not None:
                if d.ts < last:
                    live = None  # out of order: sort and start again below
                    continue
                last = d.ts
                live.maybe_run_campaigns(d.ts)
                live.observe_digest(d)
        if live is not None:
            if progress is not None:
                progress(len(kept))
            return live
        kept.sort(key=operator.attrgetter("ts"))
        return _run(fresh(), kept, progress)


def report_of(detector: Detector, skipped: int = 0) -> dict[str, Any]:
    """The detection report (docs/architecture.md), with the count of events that could not be digested."""
    report = detector.report()
    if skipped:
        report["summary"]["skipped"] = skipped
    return report


def replay(
    events: Iterable[Event],
    *,
    calibration: Mapping[str, Any] | None = None,
    campaign_interval_s: float = DEFAULT_CAMPAIGN_INTERVAL_S,
    campaign_window_s: float = DEFAULT_CAMPAIGN_WINDOW_S,
    presorted: bool = False,
    progress: Progress | None = None,
    on_skip: Skip | None = None,
) -> dict[str, Any]:
    """Replay events (any order unless `presorted`) and return the detection report (docs/architecture.md).

    With `presorted=True` events are streamed without being held in memory (for logs too
    big to buffer); an event earlier than its predecessor then raises ValueError.
    """
    detector, skipped = replay_detector(
        events,
        calibration=calibration,
        campaign_interval_s=campaign_interval_s,
        campaign_window_s=campaign_window_s,
        presorted=presorted,
        progress=progress,
        on_skip=on_skip,
    )
    return report_of(detector, skipped)
