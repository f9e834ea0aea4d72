"""What the limiter answers for one request, with the x-ratelimit-* headers OpenAI sends.

Every backend returns the same four numbers (admitted, the two tats, now); the headers are made here, once,
so the three backends cannot disagree on what a client reads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from cuirass.limits.gcra import WINDOW_US, State, request_interval, token_cost


@dataclass(frozen=True, slots=True)
class Decision:
    """`allowed` or not; `headers` for the response (x-ratelimit-*, and retry-after on a refusal);
    `exceeded` names the limit that refused; `backend_down` says the counters could not be reached and
    `limits.on_backend_down` decided instead (then `allowed` is the mode's answer)."""

    allowed: bool
    headers: dict[str, str] = field(default_factory=dict)
    exceeded: Literal["requests", "tokens"] | None = None
    backend_down: bool = False


UNLIMITED = Decision(True)


def _duration(us: int) -> str:
    seconds = max(0, us) / 1e6
    return f"{seconds:.3f}s" if seconds < 60 else f"{int(seconds // 60)}m{seconds % 60:.0f}s"


def decide(admitted: bool, state: State, now: int, rpm: int | None, tpm: int | None) -> Decision:
    """The decision and headers for a request the backend admitted or not, from the key's state after it."""
    h: dict[str, str] = {}
    r, t = state
    if rpm is not None:
        interval = request_interval(rpm) or 1
        h["x-ratelimit-limit-requests"] = str(rpm)
        h["x-ratelimit-remaining-requests"] = str(max(0, (now + WINDOW_US - max(r, now)) // interval))
        h["x-ratelimit-reset-requests"] = _duration(r - now)
    if tpm is not None:
        h["x-ratelimit-limit-tokens"] = str(tpm)
        h["x-ratelimit-remaining-tokens"] = str(min(tpm, max(0, (now + WINDOW_US - t) * tpm // WINDOW_US)))
        h["x-ratelimit-reset-tokens"] = _duration(t - now)
    if admitted:
        return Decision(True, h)
    # How long until it would pass: the request tat must come within the window with room for one more
    # request, and the token level must get back to one token (as the per-process buckets did).
    wait_r = max(r, now) + (request_interval(rpm) or 0) - WINDOW_US - now if rpm is not None else 0
    wait_t = t + token_cost(1, tpm) - WINDOW_US - now if tpm is not None else 0
    h["retry-after"] = str(max(1, math.ceil(max(wait_r, wait_t) / 1e6)))
    return Decision(False, h, "requests" if wait_r > 0 else "tokens")
