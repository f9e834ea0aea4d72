"""Counters in Redis: shared by every gateway of a fleet (`limits.backend: redis://host:port/db`).

Each decision is one Lua script, which Redis runs atomically: it reads the key's hash, applies gcra.admit
and writes it back, in one round trip for requests and tokens together. The clock is Redis's own (TIME),
so gateways on machines whose clocks differ still share one timeline. Each hash expires once its bucket is
full again (nothing is lost: a missing hash is a full bucket), so idle keys cost no memory. One key per
script call, so it also runs on Redis Cluster.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from cuirass.limits.gcra import WINDOW_US, State, request_interval

PREFIX = "cuirass:limits:"

# `now` in microseconds: ARGV[n] when the caller passes one (tests), else the server's clock.
_NOW = """
local now
if ARGV[#ARGV] ~= '' then
  now = tonumber(ARGV[#ARGV])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local s = redis.call('HMGET', KEYS[1], 'r', 't')
local r = tonumber(s[1]) or now
local t = tonumber(s[2]) or now
local function put()
  redis.call('HSET', KEYS[1], 'r', string.format('%.0f', r), 't', string.format('%.0f', t))
  redis.call('PEXPIRE', KEYS[1], math.ceil((math.max(r, t) - now) / 1000) + 1000)
end
"""
# ARGV: request interval (us, '' = no request limit), '1' if there is a token limit, now.
_ACQUIRE = (
    _NOW
    + f"""
local interval = tonumber(ARGV[1])
local start = math.max(r, now)
local ok = (interval == nil or start + interval <= now + {WINDOW_US}) and (ARGV[2] ~= '1' or t < now + {WINDOW_US})
if ok and interval ~= nil then
  r = start + interval
  put()
end
return {{ok and 1 or 0, string.format('%.0f', r), string.format('%.0f', t), string.format('%.0f', now)}}
"""
)
# ARGV: cost (us), now.
_CHARGE = (
    _NOW
    + """
t = math.max(t, now) + tonumber(ARGV[1])
put()
return 1
"""
)


def describe(url: str) -> str:
    """The URL without user or password, for logs and errors."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


class RedisBackend:
    name = "redis"

    def __init__(
        self, url: str, timeout_s: float, prefix: str = PREFIX, clock: Callable[[], int] | None = None
    ) -> None:
        self.where = describe(url)
        self._url = url
        self._timeout_s = timeout_s
        self._prefix = prefix
        self._clock = clock  # None: Redis's clock
        self._client: Redis | None = None

    async def start(self) -> None:
        # No connection yet: a Redis that is down at start-up is handled like one that goes down later.
        # The Limiter bounds each call; no retries here, so a dead Redis costs one attempt, not several.
        self._client = Redis.from_url(
            self._url,
            socket_timeout=self._timeout_s,
            socket_connect_timeout=self._timeout_s,
            retry=Retry(NoBackoff(), 0),
            decode_responses=True,
        )
        self._acquire = self._client.register_script(_ACQUIRE)
        self._charge = self._client.register_script(_CHARGE)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def _now(self) -> str:
        return "" if self._clock is None else str(self._clock())

    async def acquire(self, key_id: str, rpm: int | None, tpm: int | None) -> tuple[bool, State, int]:
        interval = request_interval(rpm)
        args = ["" if interval is None else str(interval), "1" if tpm is not None else "0", self._now()]
        ok, r, t, now = await self._acquire(keys=[self._prefix + key_id], args=args)
        return ok == 1, State(int(r), int(t)), int(now)

    async def charge(self, key_id: str, cost: int) -> None:
        await self._charge(keys=[self._prefix + key_id], args=[str(cost), self._now()])
