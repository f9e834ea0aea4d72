"""Issue 22, item 2 (the other way round): the gateway emits OpenTelemetry spans with the GenAI semantic
conventions to an OTLP/HTTP collector, so Cuirass shows up in a provider's existing tracing.

The collector here is a small HTTP server that decodes what the real OTLP exporter sends (the other side of
the boundary); the gateway, its exporter and the clients are the real ones.
"""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from tests.conftest import ADMIN_KEY, Gateway, MockUpstream, free_port, gateway_config

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PROMPT = "What is 15 + 27? Please show the steps."


class Collector:
    """An OTLP/HTTP traces endpoint that keeps every span it is sent, with its attributes decoded."""

    def __init__(self) -> None:
        self.spans: list[dict[str, Any]] = []
        self.raw = b""
        collector = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                collector.raw += body
                request = ExportTraceServiceRequest.FromString(body)
                for rs in request.resource_spans:
                    for ss in rs.scope_spans:
                        for span in ss.spans:
                            collector.spans.append(_decode(span, rs.resource))
                out = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/v1/traces"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, n: int, timeout: float = 20) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.spans) < n and time.monotonic() < deadline:
            time.sleep(0.1)
        return self.spans


def _value(v: Any) -> Any:
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [_value(x) for x in v.array_value.values]
    return getattr(v, kind) if kind else None


def _decode(span: Any, resource: Any) -> dict[str, Any]:
    return {
        "name": span.name,
        "kind": span.kind,
        "trace_id": span.trace_id.hex(),
        "parent": span.parent_span_id.hex(),
        "duration_ms": (span.end_time_unix_nano - span.start_time_unix_nano) / 1e6,
        "attributes": {a.key: _value(a.value) for a in span.attributes},
        "service": {a.key: _value(a.value) for a in resource.attributes}.get("service.name"),
    }


@pytest.fixture(scope="module")
def traced(mock: MockUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Gateway, Collector]]:
    collector = Collector()
    cfg = gateway_config(mock, tracing={"otlp_endpoint": collector.url, "service_name": "edge-gw"})
    gw = Gateway(tmp_path_factory.mktemp("traced"), cfg, env={"OTEL_BSP_SCHEDULE_DELAY": "200"})
    yield gw, collector
    gw.stop()
    collector.server.shutdown()


def test_each_request_is_one_genai_span_joining_the_callers_trace(traced: tuple[Gateway, Collector]) -> None:
    gw, collector = traced
    client = openai.OpenAI(base_url=gw.base_url, api_key=gw.key, max_retries=0)
    chat = client.chat.completions.with_raw_response.create(
        model="m",
        messages=[{"role": "user", "content": PROMPT}],
        max_tokens=6,
        temperature=0.5,
        extra_headers={"traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01"},
    )
    claude = anthropic.Anthropic(base_url=gw.base_url.removesuffix("/v1"), api_key=gw.key, max_retries=0)
    msg = claude.messages.with_raw_response.create(
        model="m", max_tokens=5, messages=[{"role": "user", "content": PROMPT}]
    )
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=gw.base_url, api_key="sk-cui-nope", max_retries=0).completions.create(
            model="m", prompt=PROMPT
        )
    spans = {s["attributes"]["cuirass.request_id"]: s for s in collector.wait(3)}
    assert len(spans) == 3
    first = spans[chat.headers["x-request-id"]]
    assert first["name"] == "chat m" and first["kind"] == 2 and first["service"] == "edge-gw"  # SERVER
    assert first["trace_id"] == TRACE_ID and first["parent"] == "00f067aa0ba902b7"  # joined the caller's trace
    attrs = first["attributes"]
    assert attrs["gen_ai.operation.name"] == "chat" and attrs["gen_ai.request.model"] == "m"
    assert attrs["gen_ai.request.max_tokens"] == 6 and attrs["gen_ai.request.temperature"] == 0.5
    assert attrs["gen_ai.usage.output_tokens"] == 6 and attrs["gen_ai.usage.input_tokens"] > 0
    assert attrs["gen_ai.response.finish_reasons"] == ["length"]
    assert attrs["http.response.status_code"] == 200 and attrs["cuirass.account"] == gw.account
    assert attrs["cuirass.action"] == "pass" and first["duration_ms"] > 0
    second = spans[msg.headers["x-request-id"]]
    assert second["attributes"]["url.path"] == "/v1/messages" and second["trace_id"] != TRACE_ID
    (refused,) = [s for k, s in spans.items() if k not in (chat.headers["x-request-id"], msg.headers["x-request-id"])]
    assert refused["name"] == "text_completion" and refused["attributes"]["http.response.status_code"] == 401
    assert refused["attributes"]["error.type"] == "401"
    # Nothing a tracing backend should not hold: no prompt or answer (capture_content is off), no key.
    assert PROMPT.encode() not in collector.raw and b"What is 15" not in collector.raw
    assert gw.key.encode() not in collector.raw and ADMIN_KEY.encode() not in collector.raw


def test_content_on_request_and_a_dead_collector_costs_nothing(
    mock: MockUpstream, tmp_path_factory: pytest.TempPathFactory
) -> None:
    collector = Collector()
    cfg = gateway_config(mock, tracing={"otlp_endpoint": collector.url, "capture_content": True})
    gw = Gateway(tmp_path_factory.mktemp("content"), cfg, env={"OTEL_BSP_SCHEDULE_DELAY": "200"})
    dead = Gateway(
        tmp_path_factory.mktemp("dead"),
        gateway_config(mock, tracing={"otlp_endpoint": f"http://127.0.0.1:{free_port()}/v1/traces"}),
        env={"OTEL_BSP_SCHEDULE_DELAY": "200"},
    )
    try:
        for g in (gw, dead):
            r = openai.OpenAI(base_url=g.base_url, api_key=g.key, max_retries=0).chat.completions.create(
                model="m", messages=[{"role": "user", "content": PROMPT}], max_tokens=4
            )
            assert r.choices[0].message.content
        (span,) = collector.wait(1)
        assert PROMPT in span["attributes"]["gen_ai.input.messages"]
        assert r.choices[0].message.content  # the dead collector's gateway answered
        assert httpx.get(f"http://127.0.0.1:{dead.port}/health/readiness").status_code == 200
    finally:
        gw.stop()
        dead.stop()
        collector.server.shutdown()
    assert "Traceback" not in dead.stderr
