"""Checked reads of one foreign log record's values: each returns the value in the event record's type, or
None (or raises ValueError where the field is required). A foreign log is hostile input, so no value is
trusted to have the type its schema promises."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import orjson


class NotARequest(Exception):
    """The record is well-formed but holds no model request (a database span, an embedding call): it is
    counted as ignored, not as malformed."""


def text(value: Any) -> str | None:
    """A non-empty string, or None."""
    return value if isinstance(value, str) and value else None


def identifier(value: Any) -> str | None:
    """An id: a non-empty string, or a whole number written as one."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return text(value)


def number(value: Any) -> float | None:
    """A finite number (JSON numbers, or numeric strings as OTLP/JSON writes 64-bit integers), or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if isinstance(value, (int, float)) and math.isfinite(value):
        return value
    return None


def integer(value: Any) -> int | None:
    """A whole number (also a numeric string), or None."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def timestamp(value: Any) -> float | None:
    """Unix seconds from a number or an ISO 8601 string (without a zone: UTC, as databases export it)."""
    if isinstance(value, str):
        try:
            when = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            return number(value)
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        return when.timestamp()
    return number(value)


def json_value(value: Any) -> Any:
    """A structured value that a log may hold either decoded or as a JSON string (span attributes can only
    hold strings; some databases export JSON columns as text)."""
    if isinstance(value, str):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return None
    return value


def mapping(value: Any) -> dict[str, Any]:
    """An object (decoded or as a JSON string), or an empty one."""
    value = json_value(value)
    return value if isinstance(value, dict) else {}


def dotted(record: dict[str, Any], path: str) -> Any:
    """The value at `a.b.c` in nested objects (JSON strings on the way are decoded), or None."""
    value: Any = record
    for part in path.split("."):
        value = mapping(value).get(part)
        if value is None:
            return None
    return value


def required(value: Any, what: str) -> Any:
    if value is None:
        raise ValueError(f"no {what}")
    return value


def chat_response(body: Any) -> dict[str, Any] | None:
    """The event's `response` ({content, finish_reason, usage}) from an OpenAI chat or text completion
    object: the first choice's text (`message.content` or `text`) and the usage object."""
    body = mapping(body)
    if not body:
        return None
    choices = body.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}
    message = choice.get("message")
    content = message.get("content") if isinstance(message, dict) else choice.get("text")
    usage = body.get("usage")
    return {
        "content": content if isinstance(content, str) else None,
        "finish_reason": text(choice.get("finish_reason")),
        "usage": usage if isinstance(usage, dict) else None,
    }
