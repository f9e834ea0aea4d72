"""Cuirass events written as the logs other systems keep, for the `detect run --format` tests.

Each writer emits what that system itself records for the request, as documented by it, and nothing
Cuirass would know that it does not:

- `to_otel`: OpenTelemetry GenAI spans (semantic conventions `gen_ai.*`) as the Collector's file exporter
  writes them: OTLP/JSON export requests, one per line, each a batch of spans under one resource, with
  the HTTP server span each inference sits in (not a GenAI span). Some spans use the older flattened
  `gen_ai.prompt.N.*` / `gen_ai.completion.N.*` attributes, and some lines hold one bare span;
- `to_litellm`: rows of LiteLLM's `LiteLLM_SpendLogs` table as JSON lines, with prompts stored
  (`store_prompts_in_spend_logs`): the request body in `proxy_server_request`, no headers;
- `to_openai_jsonl`: the plain request/response bodies with caller metadata that README documents.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson


def _nanos(ts: float) -> int:
    return int(Decimal(repr(ts)) * 1_000_000_000)  # exact: the float's shortest decimal, in nanoseconds


def _hex(text: str, chars: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:chars]


def _value(v: Any) -> dict[str, Any]:
    """An OTLP/JSON AnyValue (64-bit integers as strings, as protobuf's JSON mapping writes them)."""
    if isinstance(v, bool):
        return {"boolValue": v}
    if isinstance(v, int):
        return {"intValue": str(v)}
    if isinstance(v, float):
        return {"doubleValue": v}
    if isinstance(v, list):
        return {"arrayValue": {"values": [_value(x) for x in v]}}
    return {"stringValue": str(v)}


def _attributes(attrs: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"key": k, "value": _value(v)} for k, v in attrs.items() if v is not None]


def _parts(message: dict[str, Any]) -> list[dict[str, Any]]:
    """A chat message's parts in the GenAI message schema (text, tool_call, tool_call_response)."""
    content = message.get("content")
    if message.get("role") == "tool":
        return [{"type": "tool_call_response", "id": message.get("tool_call_id"), "response": content}]
    parts: list[dict[str, Any]] = []
    if isinstance(content, str) and content:
        parts.append({"type": "text", "content": content})
    for call in message.get("tool_calls") or []:
        fn = call.get("function", {})
        parts.append(
            {"type": "tool_call", "id": call.get("id"), "name": fn.get("name"), "arguments": fn.get("arguments")}
        )
    return parts


def otel_span(event: dict[str, Any], flattened: bool = False) -> dict[str, Any]:
    """One GenAI `chat` client span for an event, as OTLP/JSON."""
    params, response = event.get("params") or {}, event.get("response") or {}
    usage = response.get("usage") or {}
    messages = list(event["messages"])
    attrs: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": event["model"],
        "gen_ai.request.temperature": params.get("temperature"),
        "gen_ai.request.max_tokens": params.get("max_tokens"),
        "gen_ai.request.top_p": params.get("top_p"),
        "gen_ai.request.choice.count": params.get("n"),
        "gen_ai.response.model": event["model"],
        "gen_ai.response.finish_reasons": [response["finish_reason"]] if response.get("finish_reason") else None,
        "gen_ai.usage.input_tokens": usage.get("prompt_tokens"),
        "gen_ai.usage.output_tokens": usage.get("completion_tokens"),
        "user.id": event["account"],
        "client.address": event.get("ip"),
        "user_agent.original": event.get("user_agent"),
        "server.address": "api.example.com",
    }
    if params.get("tools"):
        attrs["gen_ai.tool.definitions"] = orjson.dumps(params["tools"]).decode()
    if flattened:  # the older convention (OpenLLMetry and early semconv): one attribute per message field
        for i, m in enumerate(messages):
            attrs[f"gen_ai.prompt.{i}.role"] = m["role"]
            attrs[f"gen_ai.prompt.{i}.content"] = m.get("content") if isinstance(m.get("content"), str) else ""
        if response.get("content") is not None:
            attrs["gen_ai.completion.0.role"] = "assistant"
            attrs["gen_ai.completion.0.content"] = response["content"]
            attrs["gen_ai.completion.0.finish_reason"] = response.get("finish_reason")
    else:
        if messages and messages[0].get("role") == "system":
            attrs["gen_ai.system_instructions"] = orjson.dumps(
                [{"type": "text", "content": messages.pop(0)["content"]}]
            ).decode()
        attrs["gen_ai.input.messages"] = orjson.dumps(
            [{"role": m["role"], "parts": _parts(m)} for m in messages]
        ).decode()
        if response.get("content") is not None:
            out = {"role": "assistant", "parts": [{"type": "text", "content": response["content"]}]}
            attrs["gen_ai.output.messages"] = orjson.dumps(
                [{**out, "finish_reason": response.get("finish_reason")}]
            ).decode()
    start = _nanos(event["ts"])
    return {
        "traceId": _hex(event["request_id"], 32),
        "spanId": _hex(event["request_id"] + "/llm", 16),
        "parentSpanId": _hex(event["request_id"] + "/http", 16),
        "name": f"chat {event['model']}",
        "kind": 3,  # SPAN_KIND_CLIENT
        "startTimeUnixNano": str(start),
        "endTimeUnixNano": str(start + 1_500_000_000),
        "attributes": _attributes(attrs),
        "status": {},
    }


def _http_span(event: dict[str, Any]) -> dict[str, Any]:
    start = _nanos(event["ts"])
    return {
        "traceId": _hex(event["request_id"], 32),
        "spanId": _hex(event["request_id"] + "/http", 16),
        "name": "POST /v1/chat/completions",
        "kind": 2,  # SPAN_KIND_SERVER
        "startTimeUnixNano": str(start),
        "endTimeUnixNano": str(start + 1_600_000_000),
        "attributes": _attributes({"http.request.method": "POST", "url.path": "/v1/chat/completions"}),
    }


def to_otel(events: Iterable[dict[str, Any]], out: Path, batch: int = 40) -> Path:
    resource = {"attributes": _attributes({"service.name": "inference-gateway", "telemetry.sdk.language": "python"})}
    scope = {"name": "opentelemetry.instrumentation.openai_v2", "version": "2.1b0"}
    spans: list[dict[str, Any]] = []
    with open(out, "wb") as fh:

        def flush() -> None:
            if spans:
                request = {"resourceSpans": [{"resource": resource, "scopeSpans": [{"scope": scope, "spans": spans}]}]}
                fh.write(orjson.dumps(request) + b"\n")
                spans.clear()

        for i, event in enumerate(events):
            span = otel_span(event, flattened=i % 3 == 1)
            if i % 11 == 5:  # a bare span on its own line
                fh.write(orjson.dumps(span) + b"\n")
                continue
            spans += [_http_span(event), span]
            if len(spans) >= 2 * batch:
                flush()
        flush()
    return out


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).replace(tzinfo=None).isoformat(timespec="microseconds")


def _completion(event: dict[str, Any]) -> dict[str, Any] | None:
    response = event.get("response")
    if response is None:
        return None
    return {
        "id": "chatcmpl-" + _hex(event["request_id"], 24),
        "object": "chat.completion",
        "created": int(event["ts"]),
        "model": event["model"],
        "choices": [
            {
                "index": 0,
                "finish_reason": response.get("finish_reason"),
                "message": {"role": "assistant", "content": response.get("content")},
            }
        ],
        "usage": response.get("usage"),
    }


def litellm_row(event: dict[str, Any]) -> dict[str, Any]:
    """One LiteLLM_SpendLogs row (columns of LiteLLM's schema.prisma) for an event."""
    params = event.get("params") or {}
    usage = (event.get("response") or {}).get("usage") or {}
    key_hash = _hex("sk-" + event["account"], 64)  # the column holds the virtual key's hash, never the key
    return {
        "request_id": "chatcmpl-" + _hex(event["request_id"], 24),
        "call_type": "acompletion",
        "api_key": key_hash,
        "spend": 0.00042,
        "total_tokens": usage.get("total_tokens", 0),
        "prompt_tokens": usage.get("prompt_tokens", 0),
        "completion_tokens": usage.get("completion_tokens", 0),
        "startTime": _iso(event["ts"]),
        "endTime": _iso(event["ts"] + 1.5),
        "completionStartTime": _iso(event["ts"] + 0.2),
        "model": "hosted_vllm/" + event["model"],
        "model_id": _hex(event["model"], 16),
        "model_group": event["model"],
        "custom_llm_provider": "hosted_vllm",
        "api_base": "http://10.0.0.5:8000/v1",
        "user": event["account"],
        "metadata": {
            "user_api_key": key_hash,
            "user_api_key_alias": None,
            "user_api_key_team_id": event.get("org"),
            "user_api_key_user_id": event["account"],
            "user_api_key_end_user_id": params.get("user"),
            "requester_ip_address": event.get("ip"),
            "additional_usage_values": {},
        },
        "cache_hit": "False",
        "cache_key": "Cache OFF",
        "request_tags": [],
        "team_id": event.get("org"),
        "end_user": params.get("user") or "",
        "requester_ip_address": event.get("ip"),
        "messages": event["messages"],
        "response": _completion(event) or {},
        "proxy_server_request": {"model": event["model"], "messages": event["messages"], **params},
        "session_id": None,
        "status": "success",
    }


def to_litellm(events: Iterable[dict[str, Any]], out: Path) -> Path:
    out.write_bytes(b"".join(orjson.dumps(litellm_row(e)) + b"\n" for e in events))
    return out


def openai_line(event: dict[str, Any], iso: bool = False) -> dict[str, Any]:
    return {
        "ts": _iso(event["ts"]) + "Z" if iso else event["ts"],
        "request_id": event["request_id"],
        "account": event["account"],
        "org": event.get("org"),
        "ip": event.get("ip"),
        "user_agent": event.get("user_agent"),
        "payment_fingerprint": event.get("payment_fingerprint"),
        "account_created": event.get("account_created"),
        "request": {"model": event["model"], "messages": event["messages"], **(event.get("params") or {})},
        "response": _completion(event),
    }


def to_openai_jsonl(events: Iterable[dict[str, Any]], out: Path) -> Path:
    out.write_bytes(b"".join(orjson.dumps(openai_line(e, iso=i % 4 == 2)) + b"\n" for i, e in enumerate(events)))
    return out


WRITERS = {"otel": to_otel, "litellm": to_litellm, "openai-jsonl": to_openai_jsonl}
