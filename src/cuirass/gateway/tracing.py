"""OpenTelemetry traces of the model requests, with the GenAI semantic conventions (`tracing.otlp_endpoint`).

One SERVER span per request, built from its event when the request finishes: `chat {model}` (or
`text_completion {model}`), with gen_ai.operation.name, gen_ai.request.model / max_tokens / temperature /
top_p, gen_ai.usage.input_tokens / output_tokens and gen_ai.response.finish_reasons (OpenTelemetry GenAI
semantic conventions), the HTTP status, client address and user agent, and what Cuirass decided:
cuirass.account, cuirass.action, cuirass.actions, cuirass.shadowed, cuirass.upstream, cuirass.request_id. A
request that carried a W3C `traceparent` joins the caller's trace. Prompts and answers go on the span
only with `tracing.capture_content`. Secrets (keys, watermark and canary keys, cohorts) never do.

Spans are exported in batches by the SDK's own thread (OTLP over HTTP), so a slow or absent collector costs
a request nothing but a dropped span. The SDK is in the "otel" extra and imported only when enabled.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from cuirass.config import TracingConfig
from cuirass.events import Event

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

OPERATIONS = {"/v1/completions": "text_completion"}  # every other model route is a chat


class Tracing:
    """The gateway's tracer; `record` is a no-op unless an OTLP endpoint is configured."""

    def __init__(self, config: TracingConfig) -> None:
        self.config = config
        self._provider: TracerProvider | None = None
        self._tracer: Any = None
        if config.otlp_endpoint:
            self._start(config.otlp_endpoint)

    def _start(self, endpoint: str) -> None:
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor
        except ImportError as exc:
            raise RuntimeError(
                "tracing.otlp_endpoint is set but the OpenTelemetry SDK is not installed: pip install 'cuirass[otel]'"
            ) from exc
        provider = TracerProvider(resource=Resource.create({"service.name": self.config.service_name}))
        exporter = OTLPSpanExporter(endpoint=endpoint, headers=dict(self.config.headers), timeout=5)
        provider.add_span_processor(BatchSpanProcessor(exporter))
        self._provider = provider
        self._tracer = provider.get_tracer("cuirass.gateway")

    def record(self, event: Event, traceparent: str | None = None) -> None:
        """Export the span of one finished request (never raises: tracing must not fail a request)."""
        if self._tracer is None:
            return
        try:
            self._record(event, traceparent)
        except Exception:  # noqa: BLE001 - a span that cannot be built is dropped, the request is not
            pass

    def _record(self, event: Event, traceparent: str | None) -> None:
        from opentelemetry.propagate import extract
        from opentelemetry.trace import SpanKind, Status, StatusCode

        operation = OPERATIONS.get(event.endpoint, "chat")
        start = int(event.ts * 1e9)
        context = extract({"traceparent": traceparent}) if traceparent else None
        span = self._tracer.start_span(
            f"{operation} {event.model}" if event.model else operation,  # no model: refused before the body
            context=context,
            kind=SpanKind.SERVER,
            start_time=start,
            attributes=_attributes(event, operation, self.config.capture_content),
        )
        if event.status is not None and event.status >= 500:
            span.set_status(Status(StatusCode.ERROR, event.error or ""))
        span.end(end_time=start + int((event.latency_ms or 0) * 1e6))

    def close(self) -> None:
        if self._provider is not None:
            self._provider.shutdown()  # exports what is still batched


def _attributes(event: Event, operation: str, content: bool) -> dict[str, Any]:
    params = event.params if isinstance(event.params, dict) else {}
    response = event.response if isinstance(event.response, dict) else {}
    usage: dict[str, Any] = response["usage"] if isinstance(response.get("usage"), dict) else {}
    out: dict[str, Any] = {
        "gen_ai.operation.name": operation,
        "gen_ai.request.model": event.model,
        "url.path": event.endpoint,
        "http.request.method": "POST",
        "http.response.status_code": event.status,
        "client.address": event.ip,
        "user_agent.original": event.user_agent,
        "cuirass.request_id": event.request_id,
        "cuirass.account": event.account,
        "cuirass.action": event.action,
        "cuirass.upstream": event.upstream,
        "cuirass.actions": list(event.actions or ()),
        "cuirass.shadowed": list(event.shadowed or ()),
    }
    for name, attr in (("temperature", "temperature"), ("top_p", "top_p")):
        if isinstance(params.get(name), (int, float)) and not isinstance(params.get(name), bool):
            out[f"gen_ai.request.{attr}"] = float(params[name])
    max_tokens = params.get("max_tokens", params.get("max_completion_tokens"))
    if isinstance(max_tokens, int) and not isinstance(max_tokens, bool):
        out["gen_ai.request.max_tokens"] = max_tokens
    for key, attr in (("prompt_tokens", "input_tokens"), ("completion_tokens", "output_tokens")):
        if isinstance(usage.get(key), int):
            out[f"gen_ai.usage.{attr}"] = usage[key]
    if isinstance(response.get("finish_reason"), str):
        out["gen_ai.response.finish_reasons"] = [response["finish_reason"]]
    if event.status is not None and event.status >= 400:
        out["error.type"] = str(event.status)
    if content:
        out["gen_ai.input.messages"] = _json(event.messages)
        if isinstance(response.get("content"), str):
            answer = {"role": "assistant", "parts": [{"type": "text", "content": response["content"]}]}
            out["gen_ai.output.messages"] = _json([answer])
    return {k: v for k, v in out.items() if v is not None}


def _json(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return "[]"  # nested past what JSON encoders write: the event log keeps what can be kept
