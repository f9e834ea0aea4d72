"""Per-key limits as the client sees them: a limits.Decision turned into OpenAI's answer (429 with the
x-ratelimit-* headers and retry-after), or a 503 when the limits backend is down and the mode is "closed";
and what an operator sees of the backend (a counter, a gauge per worker, a rate-limited log line)."""

from __future__ import annotations

import logging

from cuirass.config import Settings
from cuirass.events.deadletter import RateLimitedLog
from cuirass.gateway import metrics
from cuirass.gateway.errors import APIError
from cuirass.limits import Backend, Decision, Limiter, open_limiter

log = logging.getLogger("cuirass.limits")
_LOG = RateLimitedLog(log, 10.0)


def make_limiter(settings: Settings) -> Limiter:
    return open_limiter(settings, on_down=_on_down, on_health=_on_health)


def admit(decision: Decision) -> dict[str, str]:
    """The headers to send with an admitted request; a refused one raises its APIError."""
    if decision.allowed:
        return decision.headers
    if decision.backend_down:
        raise APIError(
            503,
            "Rate limits cannot be checked right now. Retry shortly.",
            code="rate_limit_unavailable",
            headers=decision.headers,
        )
    retry = decision.headers["retry-after"]
    raise APIError(
        429,
        f"Rate limit reached for {decision.exceeded} per minute on this key. Retry after {retry}s.",
        code="rate_limit_exceeded",
        headers=decision.headers,
    )


def _on_down(backend: Backend, mode: str, exc: BaseException | None) -> None:
    metrics.LIMITER_BACKEND_ERRORS.labels(backend.name, mode).inc()
    what = "admitted without limits" if mode == "open" else "refused with 503"
    why = f"{type(exc).__name__}: {exc}" if exc is not None else "unknown error"
    _LOG.warning(
        "limits backend %s (%s) is down (%s); requests are %s (limits.on_backend_down=%s)",
        backend.name,
        backend.where,
        why[:300],
        what,
        mode,
    )


def _on_health(backend: Backend, up: bool) -> None:
    metrics.LIMITER_BACKEND_UP.labels(backend.name).set(1 if up else 0)
    if not up:
        _down_once.add(backend.name)
    elif backend.name in _down_once:
        log.warning("limits backend %s (%s) answers again; limits apply", backend.name, backend.where)


_down_once: set[str] = set()  # backends this worker has seen fail: their recovery is worth a line
