"""Type checks for the request fields we read or that upstreams commonly choke on.

Unknown fields are not rejected: they pass through to the upstream untouched. A wrong type gets a 400
naming the field (`param`), as OpenAI does, instead of a confusing upstream failure.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cuirass.gateway.errors import APIError


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _str_or_str_list(v: Any) -> bool:
    return isinstance(v, str) or (isinstance(v, list) and all(isinstance(s, str) for s in v))


def _prompt(v: Any) -> bool:
    # a string, a list of strings, a token list, or a list of token lists
    if _str_or_str_list(v):
        return True
    if isinstance(v, list) and all(_is_int(t) for t in v):
        return True
    return isinstance(v, list) and all(isinstance(x, list) and all(_is_int(t) for t in x) for x in v)


_COMMON: dict[str, tuple[Callable[[Any], bool], str]] = {
    "model": (lambda v: isinstance(v, str) and v != "", "a non-empty string"),
    "stream": (lambda v: isinstance(v, bool), "a boolean"),
    "stream_options": (
        lambda v: isinstance(v, dict) and isinstance(v.get("include_usage", False), bool),
        "an object with a boolean include_usage",
    ),
    "max_tokens": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "max_completion_tokens": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "temperature": (lambda v: _is_num(v) and 0 <= v <= 2, "a number between 0 and 2"),
    "top_p": (lambda v: _is_num(v) and 0 <= v <= 1, "a number between 0 and 1"),
    "n": (lambda v: _is_int(v) and 1 <= v <= 128, "an integer between 1 and 128"),
    "stop": (lambda v: v is None or _str_or_str_list(v), "a string or a list of strings"),
    "seed": (_is_int, "an integer"),
    "presence_penalty": (lambda v: _is_num(v) and -2 <= v <= 2, "a number between -2 and 2"),
    "frequency_penalty": (lambda v: _is_num(v) and -2 <= v <= 2, "a number between -2 and 2"),
    "logit_bias": (
        lambda v: v is None or (isinstance(v, dict) and all(_is_num(x) for x in v.values())),
        "an object mapping token ids to numbers",
    ),
    "user": (lambda v: isinstance(v, str), "a string"),
}

_CHAT = {
    **_COMMON,
    "logprobs": (lambda v: v is None or isinstance(v, bool), "a boolean"),
    "top_logprobs": (lambda v: v is None or (_is_int(v) and 0 <= v <= 20), "an integer between 0 and 20"),
    "tools": (lambda v: isinstance(v, list), "a list"),
}

_COMPLETIONS = {
    **_COMMON,
    "prompt": (_prompt, "a string, a list of strings, or token ids"),
    "logprobs": (lambda v: v is None or (_is_int(v) and 0 <= v <= 5), "an integer between 0 and 5"),
    "echo": (lambda v: isinstance(v, bool), "a boolean"),
    "suffix": (lambda v: v is None or isinstance(v, str), "a string"),
}


def validate_request(body: Any, endpoint: str) -> None:
    """Raise a 400 APIError if the body is not a well-typed request for `endpoint`."""
    if not isinstance(body, dict):
        raise APIError(400, "The request body must be a JSON object.", code="invalid_request")
    chat = endpoint == "/v1/chat/completions"
    required = ("model", "messages") if chat else ("model", "prompt")
    for name in required:
        if name not in body:
            raise APIError(400, f"Missing required parameter: '{name}'.", param=name, code="missing_required_parameter")
    for name, (ok, expected) in (_CHAT if chat else _COMPLETIONS).items():
        if name in body and not ok(body[name]):
            raise APIError(400, f"Invalid type for '{name}': expected {expected}.", param=name, code="invalid_type")
    if chat:
        _validate_messages(body["messages"])


def _validate_messages(messages: Any) -> None:
    if not isinstance(messages, list) or not messages:
        raise APIError(400, "'messages' must be a non-empty list.", param="messages", code="invalid_type")
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            raise APIError(400, f"Invalid type for '{where}': expected an object.", param=where, code="invalid_type")
        if not isinstance(m.get("role"), str):
            raise APIError(400, f"'{where}.role' must be a string.", param=f"{where}.role", code="invalid_type")
        content = m.get("content")
        if content is not None and not isinstance(content, str | list):
            raise APIError(
                400, f"Invalid type for '{where}.content': expected a string or a list of parts.",
                param=f"{where}.content", code="invalid_type",
            )
