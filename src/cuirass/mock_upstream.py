"""A fake OpenAI-compatible model server for tests and benchmarks (`cuirass mock-upstream`).

Content is deterministic: the words are drawn by a generator seeded with a hash of the prompt, so the
same request always gets the same answer. Latency, streaming speed and faults are configurable
globally, or per request through an extra body field `mock` (which the gateway passes through):
`{"mock": {"fault": "500" | "timeout" | "cut" | "reset", "latency_ms": 50, "tokens_per_s": 100}}`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import random
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from cuirass.events.record import message_text

FAULTS = ("500", "timeout", "cut", "reset", "429", "400")

_WORDS = (
    "the model answers with a careful step by step explanation of each part first we note that this "
    "value follows from the previous result so the total equals twice the amount and then we check "
    "again because every answer should be verified before it is given therefore the final result is "
    "clear and simple numbers add up as expected in this short worked example"
).split()


@dataclasses.dataclass
class MockConfig:
    models: tuple[str, ...] = ("mock-model",)
    latency_ms: float = 0.0  # before the first byte
    tokens_per_s: float = 0.0  # streaming speed; 0 = as fast as possible
    default_tokens: int = 32
    fault: str | None = None
    fault_rate: float = 0.0  # fraction of requests that get `fault`
    reasoning: bool = False  # also return reasoning_content (as reasoning models do)
    api_key: str | None = None  # require this bearer key, to test upstream auth
    seed: int = 0


def _completion_text(model: str, prompt: str, n_tokens: int, salt: int) -> list[str]:
    seed = int.from_bytes(hashlib.sha256(f"{model}:{salt}:{prompt}".encode()).digest()[:8], "big")
    rng = random.Random(seed)
    return [("" if i == 0 else " ") + rng.choice(_WORDS) for i in range(n_tokens)]


def _prompt_of(body: dict[str, Any]) -> str:
    """The request's text: a message's text parts count as its string content would."""
    if "messages" in body:
        return "\n".join(message_text(m) for m in body.get("messages") or [] if isinstance(m, dict))
    return str(body.get("prompt", ""))


def create_mock_app(cfg: MockConfig) -> Starlette:
    counter = {"n": 0}
    fault_rng = random.Random(cfg.seed)

    def pick_fault(opts: dict[str, Any]) -> str | None:
        if opts.get("fault"):
            return str(opts["fault"])
        if cfg.fault and fault_rng.random() < cfg.fault_rate:
            return cfg.fault
        return None

    async def models(request: Request) -> Response:
        data = [{"id": m, "object": "model", "created": 0, "owned_by": "mock"} for m in cfg.models]
        return Response(orjson.dumps({"object": "list", "data": data}), media_type="application/json")

    async def handle(request: Request) -> Response:
        if cfg.api_key and request.headers.get("authorization") != f"Bearer {cfg.api_key}":
            return _error(401, "mock: bad upstream key")
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return _error(400, "mock: invalid JSON")
        chat = request.url.path.endswith("/chat/completions")
        if body.get("model") not in cfg.models:
            return _error(404, f"mock: model {body.get('model')!r} not served")
        opts = body.get("mock") if isinstance(body.get("mock"), dict) else {}
        fault = pick_fault(opts)
        latency = float(opts.get("latency_ms", cfg.latency_ms)) / 1000
        tps = float(opts.get("tokens_per_s", cfg.tokens_per_s))
        if fault == "timeout":
            await asyncio.sleep(3600)
        if latency:
            await asyncio.sleep(latency)
        if fault in ("500", "429", "400"):
            return _error(int(fault), f"mock: injected {fault}")
        if fault == "reset":
            return _Reset()
        counter["n"] += 1
        n_tok = int(body.get("max_tokens") or body.get("max_completion_tokens") or cfg.default_tokens)
        n = int(body.get("n") or 1)
        prompt = _prompt_of(body)
        texts = [_completion_text(body["model"], prompt, n_tok, i) for i in range(n)]
        usage = {
            "prompt_tokens": len(prompt.split()),
            "completion_tokens": n_tok * n,
            "total_tokens": len(prompt.split()) + n_tok * n,
        }
        rid = ("chatcmpl-" if chat else "cmpl-") + hashlib.sha256(f"{counter['n']}:{prompt}".encode()).hexdigest()[:24]
        created = int(time.time())
        call = _tool_call(body, rid) if chat else None
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            gen = _stream(
                rid, created, body["model"], chat, texts, usage, include_usage, tps, fault == "cut", cfg.reasoning, call
            )
            return StreamingResponse(gen, media_type="text/event-stream")
        choices = []
        for i, toks in enumerate(texts):
            if chat:
                msg: dict[str, Any] = {"role": "assistant", "content": "".join(toks)}
                if cfg.reasoning:
                    msg["reasoning_content"] = "Let me think. " + "".join(toks[: max(1, n_tok // 2)])
                if call is not None:
                    msg.update(content=None, tool_calls=[call])
                finish = "tool_calls" if call else "length" if body.get("max_tokens") else "stop"
                choices.append({"index": i, "message": msg, "logprobs": None, "finish_reason": finish})
            else:
                choices.append(
                    {
                        "index": i,
                        "text": "".join(toks),
                        "logprobs": None,
                        "finish_reason": "length" if body.get("max_tokens") else "stop",
                    }
                )
        out = {
            "id": rid,
            "object": "chat.completion" if chat else "text_completion",
            "created": created,
            "model": body["model"],
            "choices": choices,
            "usage": usage,
        }
        if fault == "cut":
            return _Reset()
        return Response(orjson.dumps(out), media_type="application/json")

    return Starlette(
        routes=[
            Route("/v1/models", models, methods=["GET"]),
            Route("/v1/chat/completions", handle, methods=["POST"]),
            Route("/v1/completions", handle, methods=["POST"]),
            Route("/health", lambda r: Response(b"ok"), methods=["GET"]),
        ]
    )


def _tool_call(body: dict[str, Any], rid: str) -> dict[str, Any] | None:
    """A call of the named (or first) tool when the request requires one, as an assistant would make it."""
    tools, choice = body.get("tools"), body.get("tool_choice")
    if not isinstance(tools, list) or not tools or choice in (None, "auto", "none"):
        return None
    name = choice["function"]["name"] if isinstance(choice, dict) else tools[0]["function"]["name"]
    args = orjson.dumps({"words": len(_prompt_of(body).split())}).decode()
    return {"id": "call_" + rid[-12:], "type": "function", "function": {"name": name, "arguments": args}}


async def _stream(
    rid: str,
    created: int,
    model: str,
    chat: bool,
    texts: list[list[str]],
    usage: dict[str, int],
    include_usage: bool,
    tps: float,
    cut: bool,
    reasoning: bool,
    call: dict[str, Any] | None = None,
) -> AsyncIterator[bytes]:
    obj = "chat.completion.chunk" if chat else "text_completion"

    def chunk(choices: list[dict[str, Any]], use: dict[str, int] | None = None) -> bytes:
        c: dict[str, Any] = {"id": rid, "object": obj, "created": created, "model": model, "choices": choices}
        if include_usage:
            c["usage"] = use
        return b"data: " + orjson.dumps(c) + b"\n\n"

    if chat:
        yield chunk(
            [
                {"index": i, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
                for i in range(len(texts))
            ]
        )
        if reasoning:  # the same reasoning as the whole answer's, a piece at a time
            for thought in ["Let me think. ", *texts[0][: max(1, len(texts[0]) // 2)]]:
                yield chunk([{"index": 0, "delta": {"reasoning_content": thought}, "finish_reason": None}])
    if call is not None:  # the call's name first, then its arguments in two pieces
        args = call["function"]["arguments"]
        head = {**call, "function": {"name": call["function"]["name"], "arguments": ""}}
        for piece in (
            {"index": 0, **head},
            *({"index": 0, "function": {"arguments": a}} for a in (args[:5], args[5:])),
        ):
            yield chunk([{"index": 0, "delta": {"tool_calls": [piece]}, "finish_reason": None}])
        yield chunk([{"index": 0, "delta": {}, "finish_reason": "tool_calls"}])
        if include_usage:
            yield chunk([], usage)
        yield b"data: [DONE]\n\n"
        return
    n_tok = len(texts[0])
    for t in range(n_tok):
        if cut and t == n_tok // 2:
            return  # the connection ends with no [DONE]
        if tps:
            await asyncio.sleep(1 / tps)
        for i, toks in enumerate(texts):
            part = (
                {"index": i, "delta": {"content": toks[t]}, "finish_reason": None}
                if chat
                else {"index": i, "text": toks[t], "finish_reason": None}
            )
            yield chunk([part])
    final = [
        (
            {"index": i, "delta": {}, "finish_reason": "stop"}
            if chat
            else {"index": i, "text": "", "finish_reason": "stop"}
        )
        for i in range(len(texts))
    ]
    yield chunk(final)
    if include_usage:
        yield chunk([], usage)
    yield b"data: [DONE]\n\n"


class _Reset(Response):
    """Promise a body, send part of it, then drop the connection: a reset as the client sees it."""

    def __init__(self) -> None:
        super().__init__()

    async def __call__(self, scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"1000")],
            }
        )
        await send({"type": "http.response.body", "body": b'{"id": "partial', "more_body": True})
        raise ConnectionResetError("mock: injected reset")


def _error(status: int, message: str) -> Response:
    body = {"error": {"message": message, "type": "mock_error", "param": None, "code": str(status)}}
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")
