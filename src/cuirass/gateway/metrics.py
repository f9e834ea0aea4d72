"""Prometheus metrics. With several workers, set PROMETHEUS_MULTIPROC_DIR (serve does) and they aggregate."""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)

REQUESTS = Counter("cuirass_requests_total", "Client requests by endpoint and HTTP status", ["endpoint", "status"])
LATENCY = Histogram(
    "cuirass_request_duration_seconds",
    "Whole request time as the client sees it",
    ["endpoint", "stream"],
    buckets=_LATENCY_BUCKETS,
)
TTFT = Histogram(
    "cuirass_time_to_first_token_seconds", "Time to the first streamed chunk", ["endpoint"], buckets=_LATENCY_BUCKETS
)
UPSTREAM_LATENCY = Histogram(
    "cuirass_upstream_duration_seconds", "Time spent waiting on the upstream", ["upstream"], buckets=_LATENCY_BUCKETS
)
UPSTREAM_ERRORS = Counter("cuirass_upstream_errors_total", "Upstream failures by kind", ["upstream", "kind"])
ACTIONS = Counter("cuirass_actions_total", "Policy actions taken (or decided, in shadow mode)", ["action", "shadow"])
EVENT_QUEUE = Gauge(
    "cuirass_event_queue_depth", "Events waiting for the background writer", multiprocess_mode="livesum"
)
EVENTS_WRITTEN = Counter("cuirass_events_written_total", "Events written to the event store")
DEAD_LETTERS = Counter(
    "cuirass_dead_letters_total",
    "Records a stage could not take as they were, set aside in its dead-letter file",
    ["stage"],
)
LIMITER_BACKEND_ERRORS = Counter(
    "cuirass_limiter_backend_errors_total",
    "Requests decided by limits.on_backend_down (admitted if open, refused with 503 if closed) because the "
    "limits backend failed or did not answer in time",
    ["backend", "mode"],
)
LIMITER_BACKEND_UP = Gauge(
    "cuirass_limiter_backend_up",
    "1 while this worker's last call to the limits backend succeeded, 0 after a failure",
    ["backend"],
    multiprocess_mode="all",  # one series per worker (pid): a worker cut off from Redis shows
)

PUSH_NOTICES = Counter(
    "cuirass_push_notices_total",
    "Change notices pushed between gateways (docs/fleet.md), by outcome: sent, send_failed, received, rejected",
    ["outcome"],
)


def count_push(outcome: str) -> None:
    PUSH_NOTICES.labels(outcome).inc()


def render() -> tuple[bytes, str]:
    """The exposition text for /metrics (all workers' values when running multi-process)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    from prometheus_client import REGISTRY

    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
