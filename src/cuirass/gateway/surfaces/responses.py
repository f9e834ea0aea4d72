"""POST /v1/responses: OpenAI's Responses API, translated to and from chat completions.

Requests: `instructions` becomes a system message; `input` (a string, or message, function_call and
function_call_output items) becomes chat messages; `max_output_tokens`, function `tools`, `tool_choice` and
`text.format` map to their chat equivalents; earlier `reasoning` items are dropped. The gateway keeps no
conversation state, so `previous_response_id` and `conversation` are refused with a 400 that says so.
Answers: a `reasoning` item (the upstream's `reasoning_content` as `reasoning_text`), a `message` item with
the `output_text`, and a `function_call` item per tool call; a cut at the token limit is status
`incomplete`. Streams: response.created / in_progress, then per item output_item.added, its deltas
(reasoning_text, output_text, function_call_arguments) and done events, and response.completed (or
response.incomplete). Errors keep OpenAI's shape.

Field names and event order follow OpenAI's public API reference ("Responses", "Streaming events").
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from starlette.responses import Response

from cuirass.gateway.errors import APIError
from cuirass.gateway.surfaces import ChunkFraming, bad, first_choice, usage_of

ENDPOINT = "/v1/responses"
_STATEFUL = ("previous_response_id", "conversation")


def _parts(content: Any, where: str) -> list[dict[str, Any]]:
    """Chat content parts for a message item's content list."""
    out: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        at = f"{where}[{j}]"
        if not isinstance(part, dict):
            raise bad(f"'{at}' must be an object.", at)
        kind = part.get("type")
        if kind in ("input_text", "output_text", "text") and isinstance(part.get("text"), str):
            out.append({"type": "text", "text": part["text"]})
        elif kind == "input_image" and isinstance(part.get("image_url"), str):
            out.append({"type": "image_url", "image_url": {"url": part["image_url"]}})
        else:
            raise bad(f"'{at}' is not a content part this endpoint accepts (input_text, output_text, input_image).", at)
    return out


def _messages(items: Any) -> list[dict[str, Any]]:
    if isinstance(items, str):
        return [{"role": "user", "content": items}]
    if not isinstance(items, list) or not items:
        raise bad("'input' must be a string or a non-empty list of items.", "input")
    out: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        at = f"input[{i}]"
        if not isinstance(item, dict):
            raise bad(f"'{at}' must be an object.", at)
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role")
            if role not in ("user", "assistant", "system", "developer"):
                raise bad(f"'{at}.role' must be user, assistant, system or developer.", f"{at}.role")
            content = item.get("content")
            if isinstance(content, list):
                parts = _parts(content, f"{at}.content")
                content = (
                    "".join(p["text"] for p in parts)
                    if role != "user" and all(p["type"] == "text" for p in parts)
                    else parts
                )
            elif not isinstance(content, str):
                raise bad(f"'{at}.content' must be a string or a list of content parts.", f"{at}.content")
            out.append({"role": "system" if role == "developer" else role, "content": content})
        elif kind == "function_call":
            call_id, name, args = item.get("call_id"), item.get("name"), item.get("arguments", "")
            if not (isinstance(call_id, str) and isinstance(name, str) and isinstance(args, str)):
                raise bad(f"'{at}' must have string 'call_id', 'name' and 'arguments'.", at)
            call = {"id": call_id, "type": "function", "function": {"name": name, "arguments": args}}
            last = out[-1] if out else None
            if last is not None and last["role"] == "assistant" and "tool_calls" in last:
                last["tool_calls"].append(call)  # consecutive calls: one assistant turn, as chat has it
            else:
                out.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            call_id, output = item.get("call_id"), item.get("output")
            if not isinstance(call_id, str) or not isinstance(output, str):
                raise bad(f"'{at}' must have a string 'call_id' and 'output'.", at)
            out.append({"role": "tool", "tool_call_id": call_id, "content": output})
        elif kind == "reasoning":
            continue  # the model's own earlier reasoning: not sent back upstream
        else:
            raise bad(f"'{at}.type' is not an input item this endpoint accepts.", f"{at}.type")
    return out


def _tools(tools: Any) -> list[dict[str, Any]]:
    if not isinstance(tools, list):
        raise bad("'tools' must be a list.", "tools")
    out = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(tool.get("name"), str):
            raise bad(f"'tools[{i}]' must be a function tool with a string 'name'.", f"tools[{i}]")
        fn = {k: tool[k] for k in ("name", "description", "parameters", "strict") if tool.get(k) is not None}
        out.append({"type": "function", "function": fn})
    return out


def _tool_choice(choice: Any) -> Any:
    if choice in ("auto", "none", "required"):
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function" and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}
    raise bad("'tool_choice' must be auto, none, required or a function.", "tool_choice")


def _response_format(text: Any) -> dict[str, Any] | None:
    fmt = text.get("format") if isinstance(text, dict) else None
    if fmt is None:
        return None
    if not isinstance(fmt, dict) or fmt.get("type") not in ("text", "json_object", "json_schema"):
        raise bad("'text.format.type' must be text, json_object or json_schema.", "text.format")
    if fmt["type"] == "json_schema":
        schema = {k: fmt[k] for k in ("name", "schema", "strict", "description") if k in fmt}
        return {"type": "json_schema", "json_schema": schema}
    return {"type": fmt["type"]}


class _Items:
    """The output items of one answer, built the same way whole or streamed."""

    def __init__(self, request_id: str) -> None:
        self.rid = request_id
        self.reasoning: list[str] = []
        self.text: list[str] = []
        self.calls: dict[int, dict[str, Any]] = {}

    def reasoning_item(self) -> dict[str, Any]:
        text = "".join(self.reasoning)
        return {
            "type": "reasoning",
            "id": f"rs_{self.rid}",
            "summary": [],
            "content": [{"type": "reasoning_text", "text": text}],
        }

    def message_item(self, status: str = "completed") -> dict[str, Any]:
        part = {"type": "output_text", "text": "".join(self.text), "annotations": []}
        return {"type": "message", "id": f"msg_{self.rid}", "status": status, "role": "assistant", "content": [part]}

    def call_item(self, n: int, status: str = "completed") -> dict[str, Any]:
        c = self.calls[n]
        return {
            "type": "function_call",
            "id": f"fc_{self.rid}_{n}",
            "call_id": c["call_id"],
            "name": c["name"],
            "arguments": "".join(c["arguments"]),
            "status": status,
        }

    def output(self) -> list[dict[str, Any]]:
        out = [self.reasoning_item()] if self.reasoning else []
        if self.text or not self.calls:
            out.append(self.message_item())
        return out + [self.call_item(n) for n in sorted(self.calls)]


def _response(
    request: dict[str, Any], request_id: str, output: list[dict[str, Any]], finish: Any, usage: tuple[int, int] | None
) -> dict[str, Any]:
    status = "in_progress" if usage is None else "incomplete" if finish == "length" else "completed"
    prompt, completion = usage or (0, 0)
    return {
        "id": f"resp_{request_id}",
        "object": "response",
        "created_at": int(time.time()),
        "status": status,
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
        "instructions": request.get("instructions"),
        "max_output_tokens": request.get("max_output_tokens"),
        "model": request.get("model"),
        "output": output,
        "parallel_tool_calls": request.get("parallel_tool_calls", True) is not False,
        "temperature": request.get("temperature"),
        "top_p": request.get("top_p"),
        "tool_choice": request.get("tool_choice", "auto"),
        "tools": request.get("tools") or [],
        "metadata": request.get("metadata") if isinstance(request.get("metadata"), dict) else {},
        "text": request.get("text") if isinstance(request.get("text"), dict) else {"format": {"type": "text"}},
        "usage": None
        if usage is None
        else {
            "input_tokens": prompt,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": completion,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": prompt + completion,
        },
    }


class ResponsesFraming(ChunkFraming):
    """Chat chunks to Responses stream events: one open output item at a time, in the order they arrive."""

    def __init__(self, request: dict[str, Any], request_id: str) -> None:
        super().__init__()
        self.request, self.rid = request, request_id
        self.items = _Items(request_id)
        self.seq = 0
        self.open: tuple[str, int] | None = None  # (kind, chat tool-call index) of the open item
        self.index = -1  # its output index
        self.finish: Any = None

    def _event(self, name: str, data: dict[str, Any]) -> bytes:
        data = {"type": name, "sequence_number": self.seq, **data}
        self.seq += 1
        return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"

    def opening(self) -> bytes:
        snapshot = _response(self.request, self.rid, [], None, None)
        return self._event("response.created", {"response": snapshot}) + self._event(
            "response.in_progress", {"response": snapshot}
        )

    def _close(self) -> bytes:
        if self.open is None:
            return b""
        (kind, n), at, out = self.open, {"output_index": self.index}, b""
        if kind == "reasoning":
            item = self.items.reasoning_item()
            text = item["content"][0]["text"]
            out += self._event(
                "response.reasoning_text.done", {**at, "item_id": item["id"], "content_index": 0, "text": text}
            )
        elif kind == "message":
            item = self.items.message_item()
            part = item["content"][0]
            where = {**at, "item_id": item["id"], "content_index": 0}
            out += self._event("response.output_text.done", {**where, "text": part["text"], "logprobs": []})
            out += self._event("response.content_part.done", {**where, "part": part})
        else:
            item = self.items.call_item(n)
            args = {**at, "item_id": item["id"], "arguments": item["arguments"], "name": item["name"]}
            out += self._event("response.function_call_arguments.done", args)
        self.open = None
        return out + self._event("response.output_item.done", {**at, "item": item})

    def _open(self, kind: str, n: int = 0) -> bytes:
        out = self._close()
        self.open, self.index = (kind, n), self.index + 1
        at = {"output_index": self.index}
        if kind == "reasoning":
            item = {**self.items.reasoning_item(), "content": []}
            return out + self._event("response.output_item.added", {**at, "item": item})
        if kind == "message":
            item = {**self.items.message_item("in_progress"), "content": []}
            out += self._event("response.output_item.added", {**at, "item": item})
            part = {"type": "output_text", "text": "", "annotations": []}
            return out + self._event(
                "response.content_part.added", {**at, "item_id": item["id"], "content_index": 0, "part": part}
            )
        return out + self._event("response.output_item.added", {**at, "item": self.items.call_item(n, "in_progress")})

    def on_delta(self, choice: dict[str, Any], delta: dict[str, Any], reasoning: str | None) -> bytes:
        out = b""
        if reasoning:
            if self.open != ("reasoning", 0):
                out += self._open("reasoning")
            self.items.reasoning.append(reasoning)
            where = {"output_index": self.index, "item_id": f"rs_{self.rid}", "content_index": 0}
            out += self._event("response.reasoning_text.delta", {**where, "delta": reasoning})
        text = delta.get("content")
        if isinstance(text, str) and text:
            if self.open != ("message", 0):
                out += self._open("message")
            self.items.text.append(text)
            where = {"output_index": self.index, "item_id": f"msg_{self.rid}", "content_index": 0}
            out += self._event("response.output_text.delta", {**where, "delta": text, "logprobs": []})
        calls = delta.get("tool_calls")
        for call in calls if isinstance(calls, list) else ():
            if not isinstance(call, dict) or not isinstance(call.get("index", 0), int):
                continue
            n = call.get("index", 0)
            fn = call["function"] if isinstance(call.get("function"), dict) else {}
            if n not in self.items.calls:
                self.items.calls[n] = {
                    "call_id": str(call.get("id") or ""),
                    "name": str(fn.get("name") or ""),
                    "arguments": [],
                }
                out += self._open("call", n)
            args = fn.get("arguments")
            if isinstance(args, str) and args:
                self.items.calls[n]["arguments"].append(args)
                if self.open == ("call", n):
                    where = {"output_index": self.index, "item_id": f"fc_{self.rid}_{n}"}
                    out += self._event("response.function_call_arguments.delta", {**where, "delta": args})
        if choice.get("finish_reason"):
            self.finish = choice["finish_reason"]
        return out

    def end(self) -> bytes:
        out = self.begin() + self._close()
        final = _response(self.request, self.rid, self.items.output(), self.finish, self.usage)
        name = "response.incomplete" if final["status"] == "incomplete" else "response.completed"
        return out + self._event(name, {"response": final})

    def error(self, err: APIError) -> bytes:
        body = err.body()["error"]
        return self._event("error", {"code": body["code"], "message": body["message"], "param": body["param"]})


class ResponsesSurface:
    endpoint = ENDPOINT

    def api_key(self, headers: Any) -> str | None:
        value = headers.get("authorization")
        return value if isinstance(value, str) else None

    def to_chat(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise bad("The request body must be a JSON object.")
        for name in ("model", "input"):
            if name not in body:
                raise APIError(
                    400, f"Missing required parameter: '{name}'.", param=name, code="missing_required_parameter"
                )
        for name in _STATEFUL:
            if body.get(name) is not None:
                raise bad(
                    f"'{name}' is not supported: this gateway keeps no conversation state; send the whole input.", name
                )
        messages = _messages(body["input"])
        if body.get("instructions") is not None:
            if not isinstance(body["instructions"], str):
                raise bad("'instructions' must be a string.", "instructions")
            messages.insert(0, {"role": "system", "content": body["instructions"]})
        out: dict[str, Any] = {"model": body["model"], "messages": messages}
        if body.get("max_output_tokens") is not None:
            out["max_tokens"] = body["max_output_tokens"]
        for name in ("temperature", "top_p", "stream", "user", "parallel_tool_calls"):
            if body.get(name) is not None:
                out[name] = body[name]
        if body.get("tools"):
            out["tools"] = _tools(body["tools"])
        if body.get("tool_choice") is not None:
            out["tool_choice"] = _tool_choice(body["tool_choice"])
        fmt = _response_format(body.get("text"))
        if fmt is not None and fmt["type"] != "text":
            out["response_format"] = fmt
        return out

    def answer(self, resp: dict[str, Any], request: dict[str, Any], request_id: str) -> dict[str, Any]:
        choice = first_choice(resp)
        msg: dict[str, Any] = choice["message"] if isinstance(choice.get("message"), dict) else {}
        items = _Items(request_id)
        reasoning = msg.get("reasoning_content") or msg.get("reasoning")
        if isinstance(reasoning, str) and reasoning:
            items.reasoning.append(reasoning)
        if isinstance(msg.get("content"), str):
            items.text.append(msg["content"])
        calls = msg.get("tool_calls")
        for n, call in enumerate(calls if isinstance(calls, list) else ()):
            fn = call.get("function") if isinstance(call, dict) else None
            if isinstance(fn, dict):
                args = fn.get("arguments")
                items.calls[n] = {
                    "call_id": str(call.get("id") or ""),
                    "name": str(fn.get("name") or ""),
                    "arguments": [args if isinstance(args, str) else ""],
                }
        return _response(request, request_id, items.output(), choice.get("finish_reason"), usage_of(resp))

    def framing(self, request: dict[str, Any], request_id: str) -> ResponsesFraming:
        return ResponsesFraming(request, request_id)

    def error_response(self, err: APIError) -> Response:
        return err.response()


SURFACE = ResponsesSurface()
