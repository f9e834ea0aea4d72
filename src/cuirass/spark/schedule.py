"""When the campaign jobs run, and what every executor needs to know to replay one account.

The single-process Detector runs its campaign job on a fixed grid of event time
(`Detector.maybe_run_campaigns`): the first event starts the clock at the next multiple of the
interval; the first event at or after that point runs a job *at its own time* T, before it is
observed, and the clock moves to the multiple after T. So a job sees exactly the events with
ts < T, and there is at most one job per grid cell. Given each occupied cell's earliest event
time, the same loop over those minima yields the same jobs: the first event at or after a grid
point is always the earliest event of the first occupied cell past it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from typing import Any

from cuirass.detect.engine import DEFAULT_CAMPAIGN_INTERVAL_S, DEFAULT_CAMPAIGN_WINDOW_S


def job_times(cell_minima: Iterable[float], interval: float) -> list[float]:
    """Event times of the campaign jobs, from the earliest event time of each occupied grid cell
    (cells of `interval` seconds, any order). Mirrors Detector.maybe_run_campaigns."""
    times: list[float] = []
    next_ts: float | None = None
    for ts in sorted(cell_minima):
        if next_ts is None:
            next_ts = (math.floor(ts / interval) + 1) * interval
            continue
        if ts < next_ts:
            continue
        times.append(ts)
        next_ts = (math.floor(ts / interval) + 1) * interval
    return times


@dataclasses.dataclass(frozen=True, slots=True)
class Plan:
    """The global facts an executor needs to score its accounts exactly as one process would.

    `model_first_seen` is the one piece of state the scorer shares between accounts (the pivot
    signal's `Context`): when each model was first seen anywhere. Replayed in event-time order, the
    value an account reads is always the global minimum, so it is computed once, up front.
    """

    times: tuple[float, ...]  # campaign job times (job_times)
    model_first_seen: Mapping[str, float]
    calibration: Mapping[str, Any] | None = None
    interval: float = DEFAULT_CAMPAIGN_INTERVAL_S
    window: float = DEFAULT_CAMPAIGN_WINDOW_S
