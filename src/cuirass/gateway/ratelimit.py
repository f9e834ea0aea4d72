"""Per-key request and token limits (token buckets), answered as OpenAI does: 429 + x-ratelimit-* headers.

A bucket of capacity C refills at C/60 per second. A request needs one request-token and a positive
token balance; the tokens a response used are charged afterwards (the balance may go negative, which
then delays the next request until it has refilled). State is per gateway process.
"""

from __future__ import annotations

import math
import time

from cuirass.gateway.errors import APIError


class _Bucket:
    __slots__ = ("capacity", "level", "stamp")

    def __init__(self, capacity: int, now: float) -> None:
        self.capacity = capacity
        self.level = float(capacity)
        self.stamp = now

    def refill(self, now: float) -> None:
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.capacity / 60.0)
        self.stamp = now

    def seconds_until(self, amount: float) -> float:
        """Time until the level reaches `amount`."""
        return max(0.0, (amount - self.level) * 60.0 / self.capacity)


def _duration(seconds: float) -> str:
    return f"{seconds:.3f}s" if seconds < 60 else f"{int(seconds // 60)}m{seconds % 60:.0f}s"


class RateLimiter:
    def __init__(self, max_keys: int = 1_000_000) -> None:
        self._requests: dict[str, _Bucket] = {}
        self._tokens: dict[str, _Bucket] = {}
        self._max_keys = max_keys

    def _bucket(self, table: dict[str, _Bucket], key: str, capacity: int, now: float) -> _Bucket:
        b = table.get(key)
        if b is None or b.capacity != capacity:
            if len(table) >= self._max_keys:
                table.clear()  # bounded memory; a reset only ever errs towards letting requests through
            b = table[key] = _Bucket(capacity, now)
        else:
            b.refill(now)
        return b

    def acquire(self, key: str, rpm: int | None, tpm: int | None) -> dict[str, str]:
        """Admit one request or raise a 429 APIError; returns the x-ratelimit-* headers."""
        if rpm is None and tpm is None:
            return {}
        now = time.monotonic()
        headers: dict[str, str] = {}
        wait = 0.0
        rb = tb = None
        if rpm is not None:
            rb = self._bucket(self._requests, key, rpm, now)
            if rb.level < 1.0:
                wait = max(wait, rb.seconds_until(1.0))
        if tpm is not None:
            tb = self._bucket(self._tokens, key, tpm, now)
            if tb.level <= 0.0:
                wait = max(wait, tb.seconds_until(1.0))
        if wait > 0:
            headers.update(self._headers(rb, tb))
            headers["retry-after"] = str(max(1, math.ceil(wait)))
            which = "requests" if rb is not None and rb.level < 1.0 else "tokens"
            raise APIError(
                429,
                f"Rate limit reached for {which} per minute on this key. Retry after {headers['retry-after']}s.",
                code="rate_limit_exceeded",
                headers=headers,
            )
        if rb is not None:
            rb.level -= 1.0
        return self._headers(rb, tb)

    def charge(self, key: str, tokens: int, tpm: int | None) -> None:
        """Debit the tokens a finished request used."""
        if tpm is None or tokens <= 0:
            return
        b = self._bucket(self._tokens, key, tpm, time.monotonic())
        b.level -= tokens

    @staticmethod
    def _headers(rb: _Bucket | None, tb: _Bucket | None) -> dict[str, str]:
        h: dict[str, str] = {}
        if rb is not None:
            h["x-ratelimit-limit-requests"] = str(rb.capacity)
            h["x-ratelimit-remaining-requests"] = str(max(0, int(rb.level)))
            h["x-ratelimit-reset-requests"] = _duration(rb.seconds_until(rb.capacity))
        if tb is not None:
            h["x-ratelimit-limit-tokens"] = str(tb.capacity)
            h["x-ratelimit-remaining-tokens"] = str(max(0, int(tb.level)))
            h["x-ratelimit-reset-tokens"] = _duration(tb.seconds_until(tb.capacity))
        return h
