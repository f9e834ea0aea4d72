"""One client request as it travels through the gateway, and the single event it becomes.

Every request, however it ends (served, refused, failed upstream, cut by the client), is finished
exactly once through `Exchange.finish`, which is what makes the one-event-per-request invariant hold.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from typing import TYPE_CHECKING, Any

from cuirass.accounts import KeyInfo
from cuirass.events import ANONYMOUS, Event
from cuirass.events.record import message_text, prompt_messages

CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"

if TYPE_CHECKING:
    from cuirass.gateway.routing import Route
    from cuirass.respond.responder import Plan
    from cuirass.upstream import Upstream


@dataclasses.dataclass(slots=True)
class Dispatch:
    """Where a routed request goes and what the policy planned for it (set once, in proxy._handle)."""

    route: Route
    upstream: Upstream  # the principal, or the decoy the plan moved it to
    body: dict[str, Any]  # the request as the upstream gets it (its own model name)
    plan: Plan | None  # None: the request passes untouched
    headers: dict[str, str]  # response headers (rate limits, request id)


@dataclasses.dataclass(slots=True)
class Exchange:
    endpoint: str
    ip: str | None
    user_agent: str | None
    request_id: str = dataclasses.field(default_factory=lambda: uuid.uuid4().hex)
    ts: float = dataclasses.field(default_factory=time.time)
    t0: float = dataclasses.field(default_factory=time.perf_counter)
    key: KeyInfo | None = None
    body: dict[str, Any] | None = None
    status: int = 200
    error: str | None = None
    action: str | None = None
    upstream: str | None = None
    actions: tuple[str, ...] = ()
    shadowed: tuple[str, ...] = ()
    cohort: str | None = None
    response: dict[str, Any] | None = None
    ttft_s: float | None = None
    upstream_t0: float | None = None  # when the upstream call began
    upstream_s: float | None = None  # how long the upstream took (whole response or whole stream)
    finished: bool = False
    dispatch: Dispatch | None = None
    traceparent: str | None = None  # the caller's W3C trace context, which the request's span joins

    @property
    def wire(self) -> str:
        """The OpenAI endpoint the upstream is asked on: /v1/completions, or chat completions for every
        chat-shaped surface (chat completions, and the Messages and Responses APIs translated to it)."""
        return COMPLETIONS if self.endpoint == COMPLETIONS else CHAT

    @property
    def routed(self) -> Dispatch:
        """The dispatch of a request that got past routing and the policy."""
        assert self.dispatch is not None, "not routed yet"
        return self.dispatch

    def upstream_started(self) -> None:
        self.upstream_t0 = time.perf_counter()

    def upstream_done(self) -> None:
        if self.upstream_t0 is not None and self.upstream_s is None:
            self.upstream_s = time.perf_counter() - self.upstream_t0

    def mark_first_token(self) -> None:
        if self.ttft_s is None:
            self.ttft_s = time.perf_counter() - self.t0

    def event(self) -> Event:
        body = self.body or {}
        acc = self.key.account if self.key else None
        endpoint_fields = ("model", "messages") if self.wire == CHAT else ("model", "prompt")
        return Event(
            ts=self.ts,
            request_id=self.request_id,
            account=acc.id if acc else ANONYMOUS,
            org=acc.org if acc else None,
            ip=self.ip,
            user_agent=self.user_agent,
            payment_fingerprint=acc.payment_fingerprint if acc else None,
            account_created=acc.created if acc else None,
            endpoint=self.endpoint,
            model=model if isinstance(model := body.get("model"), str) else "",
            messages=_messages(self.wire, body),
            params={k: v for k, v in body.items() if k not in endpoint_fields},
            response=self.response,
            action=self.action,
            status=self.status,
            latency_ms=round((time.perf_counter() - self.t0) * 1000, 3),
            ttft_ms=None if self.ttft_s is None else round(self.ttft_s * 1000, 3),
            error=self.error,
            upstream=self.upstream,
            actions=list(self.actions) or None,
            shadowed=list(self.shadowed) or None,
            cohort=self.cohort,
        )

    def prompt_text(self) -> str:
        return "\n".join(message_text(m) for m in _messages(self.wire, self.body or {}) if isinstance(m, dict))


def _messages(wire: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    if wire == CHAT:
        msgs = body.get("messages")
        return msgs if isinstance(msgs, list) else []
    return prompt_messages(body.get("prompt"))


class ResponseAccumulator:
    """Collects what the client was sent, for the event's `response` field: first choice only."""

    __slots__ = ("chat", "parts", "reasoning", "finish_reason", "usage")

    def __init__(self, wire: str) -> None:
        self.chat = wire == CHAT
        self.parts: list[str] = []
        self.reasoning: list[str] = []
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] | None = None

    def add_chunk(self, chunk: dict[str, Any]) -> None:
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        for choice in chunk.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue
            if self.chat:
                delta = choice.get("delta") or {}
                if isinstance(delta.get("content"), str):
                    self.parts.append(delta["content"])
                r = delta.get("reasoning_content") or delta.get("reasoning")
                if isinstance(r, str):
                    self.reasoning.append(r)
            elif isinstance(choice.get("text"), str):
                self.parts.append(choice["text"])
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]

    def add_whole(self, resp: dict[str, Any]) -> None:
        self.usage = resp.get("usage")
        choices = resp.get("choices") or []
        if not choices:
            return
        first = choices[0]
        self.finish_reason = first.get("finish_reason")
        if self.chat:
            msg = first.get("message") or {}
            if isinstance(msg.get("content"), str):
                self.parts.append(msg["content"])
            r = msg.get("reasoning_content") or msg.get("reasoning")
            if isinstance(r, str):
                self.reasoning.append(r)
        elif isinstance(first.get("text"), str):
            self.parts.append(first["text"])

    def result(self) -> dict[str, Any]:
        out: dict[str, Any] = {"content": "".join(self.parts), "finish_reason": self.finish_reason, "usage": self.usage}
        if self.reasoning:
            out["reasoning"] = "".join(self.reasoning)
        return out

    def total_tokens(self) -> int:
        if self.usage and isinstance(total := self.usage.get("total_tokens"), int):
            return total
        return sum(len(p) for p in self.parts) // 4  # rough estimate when the upstream reports no usage
