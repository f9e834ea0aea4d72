"""Plain JSON lines of OpenAI-format request and response bodies with the caller's metadata, the shape a
provider's own gateway or application log most easily writes. One object per line:

    {"ts": 1767225600.5,                       # Unix seconds, or ISO 8601 (no zone: UTC); required
     "account": "acct_1",                      # the caller's account (or "user", or --account-field); required
     "request": {"model": "m", "messages": [...], "temperature": 0.7, ...},   # a chat or completions body; required
     "response": {"choices": [...], "usage": {...}},                          # the body answered; optional
     "request_id": "...", "endpoint": "/v1/chat/completions",                 # optional (endpoint: from the body)
     "org": "...", "ip": "...", "user_agent": "...",                          # optional caller metadata
     "payment_fingerprint": "...", "account_created": 1760000000}             # optional account record

A request with `messages` is a chat completion; one with `prompt` a (legacy) completion, read as one user
message as the gateway records it (events/record.py, `prompt_messages`). Every other key of the request body is a parameter.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from cuirass.events.formats import fields
from cuirass.events.record import Event, prompt_messages

LACKS = ("action",)  # what Cuirass did to a request: this log comes from elsewhere
PARAMS = None
_ACCOUNT_KEYS = ("account", "user")


def records(obj: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield obj


def to_event(line: dict[str, Any], options: Any) -> Event:
    request = line.get("request")
    if not isinstance(request, dict):
        raise ValueError("no 'request' object")
    messages = request.get("messages")
    if isinstance(messages, list):
        endpoint = "/v1/chat/completions"
    elif "prompt" in request and (messages := prompt_messages(request["prompt"])):
        endpoint = "/v1/completions"
    else:
        raise ValueError("the request has neither 'messages' (chat) nor a 'prompt' (completions)")
    keys = (options.account_field,) if options.account_field else _ACCOUNT_KEYS
    account = next((a for k in keys if (a := fields.identifier(line.get(k)))), None)
    return Event(
        ts=fields.required(fields.timestamp(line.get("ts")), "'ts'"),
        request_id=str(fields.identifier(line.get("request_id")) or ""),
        account=fields.required(account, f"account ({' or '.join(repr(k) for k in keys)})"),
        endpoint=fields.text(line.get("endpoint")) or endpoint,
        model=fields.required(fields.text(request.get("model")), "request 'model'"),
        messages=[m for m in messages if isinstance(m, dict)],
        params={k: v for k, v in request.items() if k not in ("model", "messages", "prompt")},
        org=fields.text(line.get("org")),
        ip=fields.text(line.get("ip")),
        user_agent=fields.text(line.get("user_agent")),
        payment_fingerprint=fields.text(line.get("payment_fingerprint")),
        account_created=fields.timestamp(line.get("account_created")),
        response=fields.chat_response(line.get("response")),
    )
