"""Turning a simulated request into the event record (docs/architecture.md) (plain dict, the shape `read_jsonl` reads).

Texts are capped so that a million-event log stays a few GB: a user turn keeps its first
USER_CAP characters, an assistant turn (in history or as the response) its first REPLY_CAP.
Token counts in `usage` are estimated (~4 characters per token) from the reply as generated and
from the prompt as logged.
"""

from __future__ import annotations

import random
from typing import Any

from cuirass.lab.traffic.identity import Identity

USER_CAP = 2000
REPLY_CAP = 500
CHAT = "/v1/chat/completions"


def tokens(text: str) -> int:
    """Rough token count: one token per ~4 characters, at least one."""
    return max(1, (len(text) + 3) // 4)


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text[:USER_CAP]}


def assistant(text: str) -> dict[str, str]:
    return {"role": "assistant", "content": text[:REPLY_CAP]}


def system(text: str) -> dict[str, str]:
    return {"role": "system", "content": text}


def response(
    messages: list[dict[str, Any]], reply: str, params: dict[str, Any], finish_reason: str = "stop"
) -> dict[str, Any]:
    """The `response` object: capped content, finish reason (`length` when max_tokens cut it), usage."""
    prompt_tokens = sum(tokens(m.get("content") or "") for m in messages)
    completion = tokens(reply)
    limit = params.get("max_tokens")
    if isinstance(limit, int) and completion > limit:
        completion, finish_reason = limit, "length"
        reply = reply[: limit * 4]
    completion *= int(params.get("n") or 1)
    return {
        "content": reply[:REPLY_CAP],
        "finish_reason": finish_reason,
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": prompt_tokens + completion,
        },
    }


def event(
    ts: float,
    rng: random.Random,
    who: Identity,
    model: str,
    messages: list[dict[str, Any]],
    params: dict[str, Any],
    reply: str,
    finish_reason: str = "stop",
    endpoint: str = CHAT,
) -> dict[str, Any]:
    """One event record, action `pass` (the lab simulates an undefended gateway)."""
    return {
        "ts": round(ts, 3),
        "request_id": f"req_{rng.getrandbits(80):020x}",
        "account": who.account,
        "org": who.org,
        "ip": who.ip(rng),
        "user_agent": who.user_agent,
        "payment_fingerprint": who.payment_fingerprint,
        "account_created": round(who.created, 3),
        "endpoint": endpoint,
        "model": model,
        "messages": messages,
        "params": params,
        "response": response(messages, reply, params, finish_reason),
        "action": "pass",
    }
