"""Event time: the simulated window, time-of-day habits, sessions and human think times.

Humans act in sessions at habitual local hours; between turns they read the answer and type
the next prompt. Scripts act around the clock at a rate. Both are sampled here so that every
actor (benign or attacking) draws its timing from the same few, documented distributions.
"""

from __future__ import annotations

import dataclasses
import math
import random
from datetime import UTC, datetime

DAY = 86400.0
HOUR = 3600.0
DEFAULT_START = datetime(2026, 3, 2, tzinfo=UTC).timestamp()

# UTC offsets (hours) of where accounts live, with rough weights (Americas, Europe, Asia).
_TIMEZONES = (
    (-8, 14),
    (-7, 4),
    (-6, 6),
    (-5, 16),
    (-3, 5),
    (0, 8),
    (1, 14),
    (2, 5),
    (3, 3),
    (5.5, 9),
    (7, 3),
    (8, 8),
    (9, 5),
)

# Local-hour activity profiles (relative weight per hour 0..23).
_PROFILES = {
    "office": [1, 0.5, 0.3, 0.2, 0.2, 0.3, 1, 3, 6, 9, 10, 10, 8, 9, 10, 10, 9, 7, 4, 3, 3, 3, 2, 1.5],
    "evening": [3, 2, 1, 0.5, 0.3, 0.3, 0.5, 1, 2, 3, 3, 3, 4, 3, 3, 3, 4, 5, 7, 9, 10, 10, 8, 5],
    "night_owl": [8, 8, 7, 5, 3, 1, 0.5, 0.5, 0.5, 1, 2, 3, 3, 3, 3, 4, 4, 5, 6, 7, 8, 9, 9, 9],
}


@dataclasses.dataclass(frozen=True, slots=True)
class Window:
    """The simulated period and the release time of the new model."""

    start: float
    days: float
    release: float

    @property
    def end(self) -> float:
        return self.start + self.days * DAY


@dataclasses.dataclass(frozen=True, slots=True)
class Habit:
    """When one human is online: UTC offset, cumulative local-hour weights, weekend appetite."""

    utc_offset: float
    cum_hours: tuple[float, ...]
    weekend: float

    def session_start(self, rng: random.Random, window: Window, day: int) -> float:
        """A session start on simulated day `day` at a habitual local hour."""
        hour = _pick_cum(rng, self.cum_hours)
        local_midnight = window.start + day * DAY - self.utc_offset * HOUR
        return local_midnight + (hour + rng.random()) * HOUR

    def active_days(self, rng: random.Random, window: Window, n: int) -> list[int]:
        """n distinct-ish days (with replacement when n > days), weekends thinned by `weekend`."""
        days = max(1, int(math.ceil(window.days)))
        weights = [self.weekend if _weekday(window.start + d * DAY) >= 5 else 1.0 for d in range(days)]
        return sorted(rng.choices(range(days), weights=weights, k=n))


def _weekday(ts: float) -> int:
    return datetime.fromtimestamp(ts, UTC).weekday()


def _pick_cum(rng: random.Random, cum: tuple[float, ...]) -> int:
    x = rng.random() * cum[-1]
    for i, c in enumerate(cum):
        if x < c:
            return i
    return len(cum) - 1


def habit(rng: random.Random, utc_offset: float | None = None, profile: str | None = None) -> Habit:
    """A random human habit: a timezone, a profile perturbed per person, a weekend appetite."""
    if utc_offset is None:
        utc_offset = rng.choices([z for z, _ in _TIMEZONES], weights=[w for _, w in _TIMEZONES])[0]
    profile = profile or rng.choices(list(_PROFILES), weights=[6, 3, 1])[0]
    acc, cum = 0.0, []
    for w in _PROFILES[profile]:
        acc += w * rng.uniform(0.5, 1.5)
        cum.append(acc)
    return Habit(utc_offset, tuple(cum), rng.uniform(0.2, 1.0))


def think_time(rng: random.Random, response_chars: int, next_prompt_chars: int) -> float:
    """Seconds a human needs between receiving an answer and sending the next prompt.

    read ~ response_chars / 30 chars/s (skimming), type ~ prompt chars / 4 chars/s capped at 90 s
    (long prompts are pasted), times a log-normal(0, 0.6) mood factor, plus 3..15 s overhead.
    """
    read = min(response_chars / 30.0, 240.0)
    typing = min(next_prompt_chars / 4.0, 90.0)
    return rng.uniform(3.0, 15.0) + (read + typing) * rng.lognormvariate(0.0, 0.6)


def generation_latency(rng: random.Random, completion_tokens: int) -> float:
    """Seconds the upstream takes to answer: ~0.5 s to first token plus ~60 tokens/s."""
    return 0.3 + rng.random() * 0.6 + completion_tokens / rng.uniform(40.0, 90.0)


def poisson(rng: random.Random, lam: float) -> int:
    """A Poisson(lam) draw: unit-rate exponential gaps counted before lam (lam is small here)."""
    n, acc = 0, rng.expovariate(1.0)
    while acc < lam:
        n += 1
        acc += rng.expovariate(1.0)
    return n
