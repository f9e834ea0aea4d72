"""OpenTelemetry GenAI spans exported as JSON.

Accepted shapes, one JSON object per line: an OTLP/JSON export request (`resourceSpans` → `scopeSpans` →
`spans`, attributes as `[{"key", "value": {"stringValue" | "intValue" | ...}}]`, as the Collector's file
exporter writes it), or one span per line (OTLP/JSON span, or the SDK console exporter's shape with
`attributes` as an object and `start_time` in ISO 8601).

Field mapping (OpenTelemetry semantic conventions for generative AI, `gen_ai.*`):
- endpoint: `gen_ai.operation.name` `chat` (or `generate_content`) → /v1/chat/completions,
  `text_completion` → /v1/completions; any other operation (embeddings, tools, agents) holds no model
  request to score and is ignored, as are spans without GenAI attributes;
- model: `gen_ai.request.model` (else `gen_ai.response.model`); ts: the span's start time;
  request_id: the span id (else `gen_ai.response.id`);
- messages: `gen_ai.system_instructions` and `gen_ai.input.messages` (JSON: `[{role, parts: [{type: text,
  content} | {type: tool_call, id, name, arguments} | {type: tool_call_response, id, response}]}]`), or the
  older flattened `gen_ai.prompt.N.role` / `gen_ai.prompt.N.content`;
- response: `gen_ai.output.messages` (else the older `gen_ai.completion.0.content`), the finish reason
  from the message or `gen_ai.response.finish_reasons`, usage from `gen_ai.usage.input_tokens` /
  `output_tokens`;
- params: `gen_ai.request.{temperature, max_tokens, top_p, frequency_penalty, presence_penalty, seed,
  stop_sequences, choice.count}` and `gen_ai.tool.definitions`;
- caller: the account from `--account-field` (a span or resource attribute), else `user.id`, else the
  older `enduser.id`; ip `client.address`; user agent `user_agent.original`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

from cuirass.events.formats import fields
from cuirass.events.record import Event

# The conventions have no attribute for these: an operator's account record or Cuirass's own decisions.
LACKS = ("account_created", "action", "org", "payment_fingerprint")
# Request attributes → OpenAI parameter names.
_PARAMS = {
    "gen_ai.request.temperature": "temperature",
    "gen_ai.request.max_tokens": "max_tokens",
    "gen_ai.request.top_p": "top_p",
    "gen_ai.request.frequency_penalty": "frequency_penalty",
    "gen_ai.request.presence_penalty": "presence_penalty",
    "gen_ai.request.seed": "seed",
    "gen_ai.request.stop_sequences": "stop",
    "gen_ai.request.choice.count": "n",
    "gen_ai.tool.definitions": "tools",
}
PARAMS = tuple(_PARAMS.values())
_ENDPOINTS = {
    "chat": "/v1/chat/completions",
    "generate_content": "/v1/chat/completions",
    "text_completion": "/v1/completions",
}
_ACCOUNT_ATTRIBUTES = ("user.id", "enduser.id")
_MAX_DEPTH = 16  # nesting of attribute values decoded; deeper values are dropped, never a RecursionError
_MAX_FLAT = 1000  # gen_ai.prompt.N messages read


def records(obj: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The spans of an OTLP export request (each with its resource's attributes), or the line as one span."""
    if "resourceSpans" not in obj:
        yield {"span": obj, "resource": {}}
        return
    if not isinstance(obj["resourceSpans"], list):
        raise ValueError("'resourceSpans' must be a list")
    for resource_spans in obj["resourceSpans"]:
        resource = fields.mapping(resource_spans).get("resource")
        resource_attrs = attributes(fields.mapping(resource).get("attributes"))
        scopes = fields.mapping(resource_spans)
        for scope in _list(scopes.get("scopeSpans", scopes.get("instrumentationLibrarySpans"))):
            for span in _list(fields.mapping(scope).get("spans")):
                yield {"span": span, "resource": resource_attrs}


def to_event(record: dict[str, Any], options: Any) -> Event:
    span = record["span"]
    if not isinstance(span, dict):
        raise ValueError("a span must be an object")
    attrs = {**record["resource"], **attributes(span.get("attributes"))}
    operation = attrs.get("gen_ai.operation.name")
    if operation is None and not any(key.startswith("gen_ai.") for key in attrs):
        raise fields.NotARequest
    if operation is not None and not isinstance(operation, str):
        raise ValueError("gen_ai.operation.name must be a string")
    endpoint = _ENDPOINTS.get(operation or "chat")
    if endpoint is None:
        raise fields.NotARequest
    keys = (options.account_field,) if options.account_field else _ACCOUNT_ATTRIBUTES
    account = next((fields.identifier(attrs.get(k)) for k in keys if fields.identifier(attrs.get(k))), None)
    return Event(
        ts=fields.required(_start(span), "span start time"),
        request_id=str(
            fields.text(span.get("spanId"))
            or fields.text(fields.dotted(span, "context.span_id"))  # the SDK console exporter's shape
            or fields.text(attrs.get("gen_ai.response.id"))
            or ""
        ),
        account=fields.required(account, f"account attribute ({' or '.join(k or '' for k in keys)})"),
        endpoint=endpoint,
        model=fields.required(
            fields.text(attrs.get("gen_ai.request.model")) or fields.text(attrs.get("gen_ai.response.model")),
            "gen_ai.request.model",
        ),
        messages=_input_messages(attrs),
        params=_params(attrs),
        ip=fields.text(attrs.get("client.address")),
        user_agent=fields.text(attrs.get("user_agent.original")),
        response=_response(attrs),
    )


def attributes(value: Any) -> dict[str, Any]:
    """Span or resource attributes as a plain dict: from OTLP/JSON's key/value list, or an object as is."""
    if isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for item in _list(value):
        if isinstance(item, dict) and isinstance(item.get("key"), str):
            out[item["key"]] = _any_value(item.get("value"), 0)
    return out


def _any_value(value: Any, depth: int) -> Any:
    """An OTLP/JSON AnyValue: one of stringValue, boolValue, intValue (a string: 64 bits), doubleValue,
    arrayValue {values}, kvlistValue {values: [{key, value}]}, bytesValue (base64, kept as the string)."""
    if not isinstance(value, dict) or depth > _MAX_DEPTH:
        return None
    if "stringValue" in value:
        return value["stringValue"] if isinstance(value["stringValue"], str) else None
    if "boolValue" in value:
        return value["boolValue"] if isinstance(value["boolValue"], bool) else None
    if "intValue" in value:
        return fields.integer(value["intValue"])
    if "doubleValue" in value:
        return fields.number(value["doubleValue"])
    if "arrayValue" in value:
        return [_any_value(v, depth + 1) for v in _list(fields.mapping(value["arrayValue"]).get("values"))]
    if "kvlistValue" in value:
        items = _list(fields.mapping(value["kvlistValue"]).get("values"))
        return {
            item["key"]: _any_value(item.get("value"), depth + 1)
            for item in items
            if isinstance(item, dict) and isinstance(item.get("key"), str)
        }
    if "bytesValue" in value:
        return value["bytesValue"] if isinstance(value["bytesValue"], str) else None
    return None


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _start(span: dict[str, Any]) -> float | None:
    nanos = fields.integer(span.get("startTimeUnixNano"))
    if nanos is not None:
        return nanos / 1_000_000_000  # int / int: correctly rounded, so ns written from seconds read back exact
    return fields.timestamp(span.get("start_time"))


def _input_messages(attrs: dict[str, Any]) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    system = fields.json_value(attrs.get("gen_ai.system_instructions"))
    if isinstance(system, str):
        system = [{"type": "text", "content": system}]
    if isinstance(system, list) and (text := _text_of(system)):
        messages.append({"role": "system", "content": text})
    structured = fields.json_value(attrs.get("gen_ai.input.messages"))
    if isinstance(structured, list):
        messages.extend(m for m in map(_message, structured) if m is not None)
        return messages
    for i in range(_MAX_FLAT):  # the older flattened attributes: gen_ai.prompt.0.role, gen_ai.prompt.0.content
        role = attrs.get(f"gen_ai.prompt.{i}.role")
        content = attrs.get(f"gen_ai.prompt.{i}.content")
        if role is None and content is None:
            break
        messages.append({"role": str(role or "user"), "content": content if isinstance(content, str) else ""})
    return messages


def _text_of(parts: list[Any]) -> str:
    return "".join(
        p["content"]
        for p in parts
        if isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("content"), str)
    )


def _message(value: Any) -> dict[str, Any] | None:
    """One GenAI message ({role, parts}) as an OpenAI chat message; parts other than text and tool calls
    (images, files, reasoning) carry nothing the detector reads and are left out."""
    if not isinstance(value, dict) or not isinstance(value.get("role"), str):
        return None
    parts = _list(value.get("parts"))
    message: dict[str, Any] = {"role": value["role"], "content": _text_of(parts)}
    calls = [p for p in parts if isinstance(p, dict) and p.get("type") == "tool_call"]
    if calls:
        message["tool_calls"] = [
            {
                "id": str(p.get("id") or ""),
                "type": "function",
                "function": {"name": str(p.get("name") or ""), "arguments": _as_json_text(p.get("arguments"))},
            }
            for p in calls
        ]
    answer = next((p for p in parts if isinstance(p, dict) and p.get("type") == "tool_call_response"), None)
    if answer is not None:
        message["tool_call_id"] = str(answer.get("id") or "")
        message["content"] = _as_json_text(answer.get("response"))
    return message


def _as_json_text(value: Any) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def _params(attrs: dict[str, Any]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for attribute, name in _PARAMS.items():
        value = attrs.get(attribute)
        if attribute == "gen_ai.tool.definitions":
            value = fields.json_value(value)
        if value is not None:
            params[name] = value
    return params


def _response(attrs: dict[str, Any]) -> dict[str, Any] | None:
    output = fields.json_value(attrs.get("gen_ai.output.messages"))
    content: str | None = None
    finish = None
    if isinstance(output, list) and output and isinstance(output[0], dict):
        content = _text_of(_list(output[0].get("parts")))
        finish = fields.text(output[0].get("finish_reason"))
    elif isinstance(attrs.get("gen_ai.completion.0.content"), str):
        content = attrs["gen_ai.completion.0.content"]
        finish = fields.text(attrs.get("gen_ai.completion.0.finish_reason"))
    reasons = attrs.get("gen_ai.response.finish_reasons")
    if finish is None and isinstance(reasons, list) and reasons:
        finish = fields.text(reasons[0])
    tokens_in = fields.integer(attrs.get("gen_ai.usage.input_tokens"))
    tokens_out = fields.integer(attrs.get("gen_ai.usage.output_tokens"))
    usage = None
    if tokens_in is not None or tokens_out is not None:
        usage = {
            "prompt_tokens": tokens_in or 0,
            "completion_tokens": tokens_out or 0,
            "total_tokens": (tokens_in or 0) + (tokens_out or 0),
        }
    if content is None and finish is None and usage is None:
        return None
    return {"content": content, "finish_reason": finish, "usage": usage}
