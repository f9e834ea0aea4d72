"""LiteLLM proxy spend logs: rows of its `LiteLLM_SpendLogs` table exported as JSON lines (e.g. `COPY (SELECT
row_to_json(s) FROM "LiteLLM_SpendLogs" s) TO ...`, or the proxy's /spend/logs API).

Field mapping (columns of `LiteLLM_SpendLogs` in LiteLLM's schema.prisma, and its StandardLoggingPayload
metadata keys):
- endpoint: `call_type` `completion` / `acompletion` → /v1/chat/completions, `text_completion` /
  `atext_completion` → /v1/completions; other calls (embeddings, images, audio, ...) are ignored;
- ts: `startTime` (ISO 8601; a naive time is UTC); request_id: `request_id`;
- account: the column named by `--account-field` (or `metadata.KEY`), else `user` (the key's owner),
  else `metadata.user_api_key_user_id`, else `api_key` (the hashed virtual key);
- org: `metadata.user_api_key_org_id`, else `team_id`; ip: `requester_ip_address` (or its copy in
  `metadata`); user agent: `proxy_server_request.headers.user-agent` where the row kept the headers;
- model: `model_group` (the public name the client asked for), else `model`;
- messages: `messages`; params: the request body in `proxy_server_request` (less model, messages, prompt
  and LiteLLM's own keys); both are stored only with `store_prompts_in_spend_logs` on;
- response: the first choice of `response` (a ModelResponse), usage from it or from `prompt_tokens` /
  `completion_tokens`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from cuirass.events.formats import fields
from cuirass.events.record import Event, prompt_messages

# Spend logs keep no account record (creation time, billing) and none of Cuirass's decisions.
LACKS = ("account_created", "action", "payment_fingerprint")
PARAMS = None  # the whole request body, where it was stored
_ENDPOINTS = {
    "completion": "/v1/chat/completions",
    "acompletion": "/v1/chat/completions",
    "text_completion": "/v1/completions",
    "atext_completion": "/v1/completions",
}
_ACCOUNT_COLUMNS = ("user", "metadata.user_api_key_user_id", "api_key")
_NOT_PARAMS = {"model", "messages", "prompt", "metadata", "litellm_metadata", "proxy_server_request"}


def records(obj: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield obj


def to_event(row: dict[str, Any], options: Any) -> Event:
    endpoint = _ENDPOINTS.get(str(row.get("call_type")))
    if endpoint is None:
        raise fields.NotARequest
    metadata = fields.mapping(row.get("metadata"))
    keys = (options.account_field,) if options.account_field else _ACCOUNT_COLUMNS
    account = next((a for k in keys if (a := fields.identifier(fields.dotted(row, k)))), None)
    server_request = fields.mapping(row.get("proxy_server_request"))
    body = fields.mapping(server_request.get("body")) if "body" in server_request else server_request
    headers = {str(k).lower(): v for k, v in fields.mapping(server_request.get("headers")).items()}
    messages = fields.json_value(row.get("messages"))
    if not isinstance(messages, list):  # {} (or "") when prompts are not stored
        messages = body.get("messages") if isinstance(body.get("messages"), list) else []
    if not messages:
        messages = prompt_messages(body.get("prompt"))
    return Event(
        ts=fields.required(fields.timestamp(row.get("startTime")), "startTime"),
        request_id=str(fields.identifier(row.get("request_id")) or ""),
        account=fields.required(account, f"account ({' or '.join(k or '' for k in keys)})"),
        endpoint=endpoint,
        model=fields.required(fields.text(row.get("model_group")) or fields.text(row.get("model")), "model"),
        messages=[m for m in messages if isinstance(m, dict)],
        params={k: v for k, v in body.items() if k not in _NOT_PARAMS and not k.startswith("litellm_")},
        org=fields.text(metadata.get("user_api_key_org_id")) or fields.text(row.get("team_id")),
        ip=fields.text(row.get("requester_ip_address")) or fields.text(metadata.get("requester_ip_address")),
        user_agent=fields.text(headers.get("user-agent")),
        response=_response(row),
    )


def _response(row: dict[str, Any]) -> dict[str, Any] | None:
    response = fields.chat_response(row.get("response"))
    if response is not None and response["usage"] is None:
        tokens_in = fields.integer(row.get("prompt_tokens"))
        tokens_out = fields.integer(row.get("completion_tokens"))
        if tokens_in is not None or tokens_out is not None:
            response["usage"] = {
                "prompt_tokens": tokens_in or 0,
                "completion_tokens": tokens_out or 0,
                "total_tokens": (tokens_in or 0) + (tokens_out or 0),
            }
    return response
