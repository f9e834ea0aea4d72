"""POST /v1/messages: Anthropic's Messages API, translated to and from OpenAI chat completions.

Requests: `system` becomes a system message; text, image, tool_use and tool_result blocks become chat
content parts, assistant tool calls and tool messages; `stop_sequences`, `metadata.user_id`, `tools` and
`tool_choice` map to their chat equivalents; an assistant's earlier `thinking` blocks are dropped (the
upstream does not take them back). Answers: the upstream's reasoning (`reasoning_content`, as vLLM's
reasoning parsers return it) becomes a `thinking` block when the request enabled thinking, then the text
and `tool_use` blocks; finish reasons map to stop reasons. Streams: message_start, content_block_start /
_delta / _stop per block (text_delta, thinking_delta, input_json_delta), message_delta with the stop
reason and usage, message_stop. Errors: `{"type": "error", "error": {"type", "message"}}`.

Field names and event order follow Anthropic's public API reference (docs.anthropic.com, "Messages").
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

from cuirass.gateway.errors import APIError
from cuirass.gateway.surfaces import ChunkFraming, bad, first_choice, text_of, usage_of

ENDPOINT = "/v1/messages"

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    499: "invalid_request_error",
    504: "timeout_error",
    529: "overloaded_error",
}
_STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "content_filter": "refusal"}
_TOOL_CHOICES = {"auto": "auto", "any": "required", "none": "none"}


def _thinking(body: dict[str, Any]) -> bool:
    thinking = body.get("thinking")
    return isinstance(thinking, dict) and thinking.get("type") == "enabled"


def _image(block: dict[str, Any], where: str) -> dict[str, Any]:
    source = block.get("source")
    if isinstance(source, dict) and source.get("type") == "base64":
        media, data = source.get("media_type"), source.get("data")
        if isinstance(media, str) and isinstance(data, str):
            return {"type": "image_url", "image_url": {"url": f"data:{media};base64,{data}"}}
    if isinstance(source, dict) and source.get("type") == "url" and isinstance(source.get("url"), str):
        return {"type": "image_url", "image_url": {"url": source["url"]}}
    raise bad(f"'{where}.source' must be a base64 or url image source.", f"{where}.source")


def _message(msg: Any, i: int) -> list[dict[str, Any]]:
    """The chat messages for Anthropic message `i`: tool results become tool messages, in order."""
    where = f"messages[{i}]"
    if not isinstance(msg, dict):
        raise bad(f"'{where}' must be an object.", where)
    role = msg.get("role")
    if role not in ("user", "assistant"):
        raise bad(f"'{where}.role' must be 'user' or 'assistant'.", f"{where}.role")
    content = msg.get("content")
    if isinstance(content, str):
        return [{"role": role, "content": content}]
    if not isinstance(content, list):
        raise bad(f"'{where}.content' must be a string or a list of content blocks.", f"{where}.content")
    out: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    for j, block in enumerate(content):
        at = f"{where}.content[{j}]"
        if not isinstance(block, dict):
            raise bad(f"'{at}' must be a content block (an object).", at)
        kind = block.get("type")
        if kind == "text" and isinstance(block.get("text"), str):
            parts.append({"type": "text", "text": block["text"]})
        elif kind == "image" and role == "user":
            parts.append(_image(block, at))
        elif kind == "tool_result" and role == "user" and isinstance(block.get("tool_use_id"), str):
            result = block.get("content", "")
            text = "" if result is None else text_of(result, f"{at}.content")
            out.append({"role": "tool", "tool_call_id": block["tool_use_id"], "content": text})
        elif kind == "tool_use" and role == "assistant":
            name, call_id, args = block.get("name"), block.get("id"), block.get("input", {})
            if not isinstance(name, str) or not isinstance(call_id, str) or not isinstance(args, dict):
                raise bad(f"'{at}' must have a string 'id' and 'name' and an object 'input'.", at)
            calls.append({"id": call_id, "type": "function", "function": {"name": name, "arguments": _json(args)}})
        elif kind in ("thinking", "redacted_thinking") and role == "assistant":
            continue  # the model's own earlier reasoning: not sent back upstream
        else:
            raise bad(f"'{at}' is not a content block this endpoint accepts for the {role} role.", at)
    if role == "assistant":
        text = "".join(p["text"] for p in parts)
        out.append({"role": "assistant", "content": text or None, **({"tool_calls": calls} if calls else {})})
    elif parts:
        out.append({"role": "user", "content": parts})
    return out


def _json(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        raise bad("A tool input cannot be encoded as JSON.", "messages") from None


def _tools(tools: Any) -> list[dict[str, Any]]:
    if not isinstance(tools, list):
        raise bad("'tools' must be a list.", "tools")
    out = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
            raise bad(f"'tools[{i}]' must be an object with a string 'name'.", f"tools[{i}]")
        schema = tool.get("input_schema", {"type": "object"})
        if not isinstance(schema, dict):
            raise bad(f"'tools[{i}].input_schema' must be an object.", f"tools[{i}].input_schema")
        fn: dict[str, Any] = {"name": tool["name"], "parameters": schema}
        if isinstance(tool.get("description"), str):
            fn["description"] = tool["description"]
        out.append({"type": "function", "function": fn})
    return out


def _tool_choice(choice: Any) -> Any:
    if not isinstance(choice, dict) or not isinstance(choice.get("type"), str):
        raise bad("'tool_choice' must be an object with a 'type'.", "tool_choice")
    if choice["type"] in _TOOL_CHOICES:
        return _TOOL_CHOICES[choice["type"]]
    if choice["type"] == "tool" and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}
    raise bad("'tool_choice.type' must be auto, any, none or tool (with a name).", "tool_choice")


def _tool_calls(msg: dict[str, Any]) -> list[dict[str, Any]]:
    calls = msg.get("tool_calls")
    out = []
    for call in calls if isinstance(calls, list) else ():
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict):
            continue
        try:
            args = orjson.loads(fn.get("arguments") or "{}")
        except orjson.JSONDecodeError:
            args = {}
        out.append(
            {
                "type": "tool_use",
                "id": str(call.get("id") or ""),
                "name": str(fn.get("name") or ""),
                "input": args if isinstance(args, dict) else {},
            }
        )
    return out


def _event(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


class MessagesFraming(ChunkFraming):
    """Chat chunks to Messages stream events: one open content block at a time, in the order they arrive."""

    def __init__(self, request: dict[str, Any], request_id: str) -> None:
        super().__init__()
        self.thinking = _thinking(request)
        self.model = request.get("model")
        self.id = f"msg_{request_id}"
        self.block: str | None = None  # the type of the open block
        self.index = -1
        self.tools: dict[int, int] = {}  # chat tool-call index -> block index
        self.stop_reason: str | None = None

    def opening(self) -> bytes:
        message: dict[str, Any] = {
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return _event("message_start", {"type": "message_start", "message": message})

    def _close(self) -> bytes:
        if self.block is None:
            return b""
        out = b""
        if self.block == "thinking":  # the SDK expects a signature on every thinking block
            delta = {"type": "signature_delta", "signature": ""}
            out = _event("content_block_delta", {"type": "content_block_delta", "index": self.index, "delta": delta})
        self.block = None
        return out + _event("content_block_stop", {"type": "content_block_stop", "index": self.index})

    def _open(self, kind: str, block: dict[str, Any]) -> bytes:
        out = self._close()
        self.block, self.index = kind, self.index + 1
        start = {"type": "content_block_start", "index": self.index, "content_block": block}
        return out + _event("content_block_start", start)

    def _delta(self, delta: dict[str, Any]) -> bytes:
        return _event("content_block_delta", {"type": "content_block_delta", "index": self.index, "delta": delta})

    def on_delta(self, choice: dict[str, Any], delta: dict[str, Any], reasoning: str | None) -> bytes:
        out = b""
        if self.thinking and reasoning:
            if self.block != "thinking":
                out += self._open("thinking", {"type": "thinking", "thinking": "", "signature": ""})
            out += self._delta({"type": "thinking_delta", "thinking": reasoning})
        text = delta.get("content")
        if isinstance(text, str) and text:
            if self.block != "text":
                out += self._open("text", {"type": "text", "text": ""})
            out += self._delta({"type": "text_delta", "text": text})
        calls = delta.get("tool_calls")
        for call in calls if isinstance(calls, list) else ():
            if not isinstance(call, dict):
                continue
            fn: dict[str, Any] = call["function"] if isinstance(call.get("function"), dict) else {}
            n = call.get("index", 0)
            if n not in self.tools:
                block = {"type": "tool_use", "id": str(call.get("id") or ""), "name": str(fn.get("name") or "")}
                out += self._open("tool_use", {**block, "input": {}})
                self.tools[n] = self.index
            args = fn.get("arguments")
            if isinstance(args, str) and args and self.tools[n] == self.index:
                out += self._delta({"type": "input_json_delta", "partial_json": args})
        if isinstance(choice.get("finish_reason"), str):
            self.stop_reason = _STOP_REASONS.get(choice["finish_reason"], "end_turn")
        return out

    def end(self) -> bytes:
        out = self.begin() + self._close()
        usage = {"input_tokens": self.usage[0], "output_tokens": self.usage[1]}
        delta = {"stop_reason": self.stop_reason or "end_turn", "stop_sequence": None}
        out += _event("message_delta", {"type": "message_delta", "delta": delta, "usage": usage})
        return out + _event("message_stop", {"type": "message_stop"})

    def error(self, err: APIError) -> bytes:
        return _event("error", _error_body(err))


def _error_body(err: APIError) -> dict[str, Any]:
    kind = _ERROR_TYPES.get(err.status, "api_error")
    return {"type": "error", "error": {"type": kind, "message": err.message}}


class MessagesSurface:
    endpoint = ENDPOINT

    def api_key(self, headers: Any) -> str | None:
        key = headers.get("x-api-key")  # what the anthropic SDK sends; `Authorization: Bearer` also works
        if isinstance(key, str) and key:
            return f"Bearer {key}"
        value = headers.get("authorization")
        return value if isinstance(value, str) else None

    def to_chat(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise bad("The request body must be a JSON object.")
        for name in ("model", "max_tokens", "messages"):
            if name not in body:
                raise APIError(400, f"Missing required parameter: '{name}'.", param=name, code="invalid_request")
        messages = body["messages"]
        if not isinstance(messages, list) or not messages:
            raise bad("'messages' must be a non-empty list.", "messages")
        chat: list[dict[str, Any]] = []
        if body.get("system") is not None:
            chat.append({"role": "system", "content": text_of(body["system"], "system")})
        for i, msg in enumerate(messages):
            chat.extend(_message(msg, i))
        out: dict[str, Any] = {"model": body["model"], "messages": chat, "max_tokens": body["max_tokens"]}
        for name in ("temperature", "top_p", "top_k", "stream"):
            if body.get(name) is not None:
                out[name] = body[name]
        if body.get("stop_sequences") is not None:
            out["stop"] = body["stop_sequences"]
        metadata = body.get("metadata")
        if isinstance(metadata, dict) and isinstance(metadata.get("user_id"), str):
            out["user"] = metadata["user_id"]
        if body.get("tools"):
            out["tools"] = _tools(body["tools"])
        if body.get("tool_choice") is not None:
            out["tool_choice"] = _tool_choice(body["tool_choice"])
            if body["tool_choice"].get("disable_parallel_tool_use") is True:
                out["parallel_tool_calls"] = False
        return out

    def answer(self, resp: dict[str, Any], request: dict[str, Any], request_id: str) -> dict[str, Any]:
        choice = first_choice(resp)
        msg: dict[str, Any] = choice["message"] if isinstance(choice.get("message"), dict) else {}
        content: list[dict[str, Any]] = []
        reasoning = msg.get("reasoning_content") or msg.get("reasoning")
        if _thinking(request) and isinstance(reasoning, str) and reasoning:
            content.append({"type": "thinking", "thinking": reasoning, "signature": ""})
        if isinstance(msg.get("content"), str) and msg["content"]:
            content.append({"type": "text", "text": msg["content"]})
        content.extend(_tool_calls(msg))
        finish = choice.get("finish_reason")
        prompt, completion = usage_of(resp)
        return {
            "id": f"msg_{request_id}",
            "type": "message",
            "role": "assistant",
            "model": resp.get("model"),
            "content": content,
            "stop_reason": _STOP_REASONS.get(finish, "end_turn") if isinstance(finish, str) else "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": prompt, "output_tokens": completion},
        }

    def framing(self, request: dict[str, Any], request_id: str) -> MessagesFraming:
        return MessagesFraming(request, request_id)

    def error_response(self, err: APIError) -> Response:
        return Response(
            orjson.dumps(_error_body(err)), status_code=err.status, headers=err.headers, media_type="application/json"
        )


SURFACE = MessagesSurface()
