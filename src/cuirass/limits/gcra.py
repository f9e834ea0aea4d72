"""The limit rule: GCRA, the generic cell rate algorithm, over a one-minute window, for requests and tokens.

GCRA (ITU-T I.371; the "virtual scheduling" form) keeps one number per limit, the theoretical arrival time
`tat`: when the bucket would be full again if nothing more came. With an emission interval T = 60 s / limit
and a burst tolerance of the whole window W = 60 s, a request arriving at `now` is admitted iff

    max(tat, now) + T <= now + W            and then  tat := max(tat, now) + T

which is a token bucket of capacity `limit` refilling at limit/60 per second, full at first (level =
limit - (tat - now) / T). Tokens are charged after the response, when their number is known:
tat := max(tat, now) + tokens * Tt, with Tt = 60 s / tokens-per-minute; the level may go negative (tat beyond
now + W), and a request is admitted only while the token level is positive (tat < now + W).

Time is in integer microseconds and costs are rounded up, so this Python version, the SQLite statement
(sqlite.py) and the Redis script (redis.py) compute bit-identical results (tests/limits checks it) and never
admit more than the limit. The state is two times, not levels, so a key whose limit changes keeps its debt.
"""

from __future__ import annotations

from typing import NamedTuple

WINDOW_US = 60_000_000  # the limits are per minute


class State(NamedTuple):
    """A key's two theoretical arrival times, in microseconds (the same clock as `now`)."""

    requests_tat: int
    tokens_tat: int


def request_interval(rpm: int | None) -> int | None:
    """T in microseconds (rounded up: never faster than the limit), or None when requests are unlimited."""
    return None if rpm is None else -(-WINDOW_US // rpm)


def token_cost(tokens: int, tpm: int) -> int:
    """How far `tokens` push the token tat, in microseconds (rounded up)."""
    return -(-tokens * WINDOW_US // tpm)


def admit(state: State | None, now: int, rpm: int | None, tpm: int | None) -> tuple[bool, State]:
    """Decide one request; returns whether it is admitted and the state after it (unchanged if refused).
    No state is a full bucket."""
    r, t = state if state is not None else (now, now)
    interval = request_interval(rpm)
    start = max(r, now)
    ok = (interval is None or start + interval <= now + WINDOW_US) and (tpm is None or t < now + WINDOW_US)
    if ok and interval is not None:
        r = start + interval
    return ok, State(r, t)


def charge(state: State | None, now: int, cost: int) -> State:
    """The state after a finished request used tokens worth `cost` microseconds (see token_cost)."""
    r, t = state if state is not None else (now, now)
    return State(r, max(t, now) + cost)
