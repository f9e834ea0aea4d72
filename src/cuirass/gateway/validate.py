"""Edge validation: one pass that type-checks every request field the gateway, the policy or detection reads.

Each known field has a spec in the tables at the bottom (`_CHAT`, `_COMPLETIONS`), built from a few
combinators (`string`, `integer`, `obj`, `list_of`, `tagged`, ...). A field that fails gets a 400 naming it
as OpenAI does (`param`, e.g. `messages[2].content[0].text`). Unknown fields are not looked at and pass
through to the upstream untouched. The whole body is bounded in nesting depth: later stages (the event
writer's JSON encoder stops at 254 levels) must never meet a shape they cannot handle.

A spec is a plain function that returns None or raises `_Bad`; the path of a failing field is collected
on the way out of the failing check, so a body that passes pays for no path strings at all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from cuirass.gateway.errors import APIError

MAX_DEPTH = 64  # levels of arrays/objects in a body, the body itself included
MAX_TOKENS = 2**31 - 1  # max_tokens and friends: larger is never meant, and fits every upstream's int
TOKEN_ID_MAX = 2**31 - 1  # prompt token ids and logit_bias keys
INT64 = (-(2**63), 2**63 - 1)
MAX_STOPS = 4
MAX_TOOLS = 128

Check = Callable[[Any], None]


class _Bad(Exception):
    """One field failed its spec. `path` is filled innermost first while the error travels outwards."""

    def __init__(self, expected: str, missing: bool = False) -> None:
        super().__init__(expected)
        self.expected = expected
        self.missing = missing
        self.path: list[str | int] = []

    def api_error(self) -> APIError:
        where = _path(reversed(self.path))
        if self.missing:
            return APIError(
                400, f"Missing required parameter: '{where}'.", param=where, code="missing_required_parameter"
            )
        return APIError(400, f"Invalid type for '{where}': expected {self.expected}.", param=where, code="invalid_type")


def _path(parts: Iterable[str | int]) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else p)
    return out


# --- combinators: each returns a Check -------------------------------------------------------------


def string(*, nonempty: bool = False, choices: tuple[str, ...] | None = None) -> Check:
    expected = (
        f"one of {', '.join(repr(c) for c in choices)}"
        if choices
        else ("a non-empty string" if nonempty else "a string")
    )

    def check(v: Any) -> None:
        if type(v) is not str or (nonempty and not v) or (choices is not None and v not in choices):
            raise _Bad(expected)

    return check


def boolean() -> Check:
    def check(v: Any) -> None:
        if type(v) is not bool:
            raise _Bad("a boolean")

    return check


def integer(lo: int, hi: int, expected: str | None = None) -> Check:
    expected = expected or f"an integer between {lo} and {hi}"

    def check(v: Any) -> None:
        if type(v) is not int or not lo <= v <= hi:
            raise _Bad(expected)

    return check


def number(lo: float, hi: float) -> Check:
    expected = f"a number between {lo:g} and {hi:g}"

    def check(v: Any) -> None:
        if (type(v) is not float and type(v) is not int) or not lo <= v <= hi:
            raise _Bad(expected)

    return check


def nullable(inner: Check) -> Check:
    """`inner`, or JSON null (OpenAI's optional parameters accept null for "not set")."""

    def check(v: Any) -> None:
        if v is not None:
            inner(v)

    return check


def by_type(expected: str, **branches: Check) -> Check:
    """Dispatch on the JSON type (`str`, `list`, `dict` as keyword names), so errors come from the branch taken."""
    table: dict[type, Check] = {{"str": str, "list": list, "dict": dict}[k]: c for k, c in branches.items()}

    def check(v: Any) -> None:
        branch = table.get(type(v))
        if branch is None:
            raise _Bad(expected)
        branch(v)

    return check


def list_of(item: Check, expected: str, *, max_items: int | None = None) -> Check:
    def check(v: Any) -> None:
        if type(v) is not list or (max_items is not None and len(v) > max_items):
            raise _Bad(expected)
        for i, x in enumerate(v):
            try:
                item(x)
            except _Bad as bad:
                bad.path.append(i)
                raise

    return check


def map_of(key_ok: Callable[[str], bool], value: Check, expected: str) -> Check:
    def check(v: Any) -> None:
        if type(v) is not dict:
            raise _Bad(expected)
        for k, x in v.items():
            if not key_ok(k):
                raise _Bad(expected)
            try:
                value(x)
            except _Bad as bad:
                bad.path.append(k)
                raise

    return check


def obj(fields: Mapping[str, Check], required: tuple[str, ...] = ()) -> Check:
    """An object whose listed fields follow their specs; other keys are left alone."""

    def check(v: Any) -> None:
        if type(v) is not dict:
            raise _Bad("an object")
        for name in required:
            if name not in v:
                bad = _Bad("", missing=True)
                bad.path.append(name)
                raise bad
        for k, x in v.items():
            spec = fields.get(k)
            if spec is not None:
                try:
                    spec(x)
                except _Bad as bad:
                    bad.path.append(k)
                    raise

    return check


def tagged(tag: str, variants: Mapping[str, Check], *, other: Check | None = None) -> Check:
    """An object whose shape depends on a string field (`role`, `type`). With `other`, unknown tags pass
    through checked by it; without, they are refused."""
    expected = f"one of {', '.join(repr(t) for t in variants)}" if other is None else "a string"

    def check(v: Any) -> None:
        if type(v) is not dict:
            raise _Bad("an object")
        t = v.get(tag)
        spec = variants.get(t) if type(t) is str else None
        if spec is None:
            if other is None or type(t) is not str:
                bad = _Bad(expected)
                bad.path.append(tag)
                raise bad
            spec = other
        spec(v)

    return check


def _token_id_key(k: str) -> bool:
    return 0 < len(k) <= 10 and k.isascii() and k.isdigit() and int(k) <= TOKEN_ID_MAX


# --- the OpenAI request schema, as far as anything here reads it -------------------------------------

_TEXT = string()
_ANY_OBJECT = obj({})

# Content parts. `text` is checked on every part that has it: detection joins the text of all parts.
_PART_COMMON = {"type": string(), "text": _TEXT}
_PART = tagged(
    "type",
    {
        "text": obj(_PART_COMMON, required=("text",)),
        "image_url": obj(
            {
                **_PART_COMMON,
                "image_url": obj(
                    {"url": string(), "detail": string(choices=("auto", "low", "high"))}, required=("url",)
                ),
            },
            required=("image_url",),
        ),
        "input_audio": obj(
            {
                **_PART_COMMON,
                "input_audio": obj({"data": string(), "format": string(nonempty=True)}, required=("data", "format")),
            },
            required=("input_audio",),
        ),
        "file": obj(
            {**_PART_COMMON, "file": obj({"file_data": string(), "file_id": string(), "filename": string()})},
            required=("file",),
        ),
        "refusal": obj({**_PART_COMMON, "refusal": _TEXT}, required=("refusal",)),
    },
    other=obj(_PART_COMMON),
)  # other part types (video_url, ...) are an upstream's business

_CONTENT = by_type("a string or a list of content parts", str=_TEXT, list=list_of(_PART, "a list of content parts"))
_FUNCTION_CALL = obj({"name": string(), "arguments": string()}, required=("name", "arguments"))
_TOOL_CALL = tagged(
    "type",
    {
        "function": obj({"id": string(), "function": _FUNCTION_CALL}, required=("id", "function")),
        "custom": obj(
            {"id": string(), "custom": obj({"name": string(), "input": string()}, required=("name", "input"))},
            required=("id", "custom"),
        ),
    },
)

_MESSAGE_COMMON = {"role": string(), "name": string(), "content": _CONTENT}
_MESSAGE = tagged(
    "role",
    {
        "system": obj(_MESSAGE_COMMON, required=("content",)),
        "developer": obj(_MESSAGE_COMMON, required=("content",)),
        "user": obj(_MESSAGE_COMMON, required=("content",)),
        "assistant": obj(
            {
                **_MESSAGE_COMMON,
                "content": nullable(_CONTENT),
                "tool_calls": list_of(_TOOL_CALL, "a list of tool calls"),
                "function_call": nullable(_FUNCTION_CALL),
                "refusal": nullable(_TEXT),
            }
        ),
        "tool": obj({**_MESSAGE_COMMON, "tool_call_id": string()}, required=("content", "tool_call_id")),
        "function": obj({**_MESSAGE_COMMON, "content": nullable(_CONTENT)}, required=("name",)),
    },
)

_TOOL = tagged(
    "type",
    {
        "function": obj(
            {
                "function": obj(
                    {
                        "name": string(nonempty=True),
                        "description": string(),
                        "parameters": _ANY_OBJECT,
                        "strict": nullable(boolean()),
                    },
                    required=("name",),
                )
            },
            required=("function",),
        ),
    },
    other=_ANY_OBJECT,
)
_FUNCTION = obj({"name": string(nonempty=True), "description": string(), "parameters": _ANY_OBJECT}, required=("name",))


def _prompt(v: Any) -> None:
    """A completions prompt: a string, a list of strings, a list of token ids, or a list of those lists."""
    if type(v) is str:
        return
    if type(v) is not list:
        raise _Bad("a string, a list of strings, or token ids")
    first = v[0] if v else ""
    (_PROMPT_STRINGS if type(first) is str else _PROMPT_IDS if type(first) is int else _PROMPT_ID_LISTS)(v)


_TOKEN_ID = integer(0, TOKEN_ID_MAX, expected="a token id (an integer >= 0)")
_PROMPT_STRINGS = list_of(_TEXT, "a list of strings")
_PROMPT_IDS = list_of(_TOKEN_ID, "a list of token ids")
_PROMPT_ID_LISTS = list_of(_PROMPT_IDS, "a list of token id lists")


class _Schema:
    """The fields of one endpoint: which must be there, and the spec of each known one. The others are
    optional, and an optional parameter may be null ("not set"), as OpenAI's own API accepts."""

    def __init__(self, required: tuple[str, ...], fields: dict[str, Check]) -> None:
        self.required = required
        self.fields = {k: c if k in required else nullable(c) for k, c in fields.items()}


_MAX_TOKENS = integer(1, MAX_TOKENS, expected=f"an integer between 1 and {MAX_TOKENS}")

_COMMON: dict[str, Check] = {
    "model": string(nonempty=True),
    "stream": boolean(),
    "stream_options": obj({"include_usage": boolean()}),
    "max_tokens": _MAX_TOKENS,
    "temperature": number(0, 2),
    "top_p": number(0, 1),
    "n": integer(1, 128),
    "stop": by_type(
        f"a string or a list of up to {MAX_STOPS} strings",
        str=_TEXT,
        list=list_of(_TEXT, f"a list of up to {MAX_STOPS} strings", max_items=MAX_STOPS),
    ),
    "seed": integer(*INT64, expected="a 64-bit integer"),
    "presence_penalty": number(-2, 2),
    "frequency_penalty": number(-2, 2),
    "logit_bias": map_of(
        _token_id_key, number(-100, 100), "an object mapping token ids to numbers between -100 and 100"
    ),
    "user": string(),
}

_CHAT = _Schema(
    ("model", "messages"),
    {
        **_COMMON,
        "messages": list_of(_MESSAGE, "a non-empty list of messages"),
        "max_completion_tokens": _MAX_TOKENS,
        "logprobs": boolean(),
        "top_logprobs": integer(0, 20),
        "tools": list_of(_TOOL, f"a list of up to {MAX_TOOLS} tools", max_items=MAX_TOOLS),
        "tool_choice": by_type("a string or an object", str=_TEXT, dict=obj({"type": string()})),
        "parallel_tool_calls": boolean(),
        "functions": list_of(_FUNCTION, f"a list of up to {MAX_TOOLS} functions", max_items=MAX_TOOLS),
        "function_call": by_type("a string or an object", str=_TEXT, dict=obj({"name": string()}, required=("name",))),
        "response_format": obj({"type": string(nonempty=True)}, required=("type",)),
    },
)

_COMPLETIONS = _Schema(
    ("model", "prompt"),
    {
        **_COMMON,
        "prompt": _prompt,
        "logprobs": integer(0, 5),
        "echo": boolean(),
        "suffix": _TEXT,
        "best_of": integer(1, 20),
    },
)


_CONTAINERS = (dict, list)


def _too_deep(value: Any, room: int) -> bool:
    """Whether `value` nests more than `room` levels of arrays/objects (itself counted), level by level."""
    level = [value]
    while level:
        if room == 0:
            return True
        room -= 1
        level = [x for c in level for x in (c.values() if type(c) is dict else c) if type(x) in _CONTAINERS]
    return False


def validate_request(body: Any, endpoint: str) -> None:
    """Raise a 400 APIError, naming the field, if `body` is not a well-formed request for `endpoint`."""
    if type(body) is not dict:
        raise APIError(400, "The request body must be a JSON object.", code="invalid_request")
    schema = _CHAT if endpoint == "/v1/chat/completions" else _COMPLETIONS
    for name in schema.required:
        if name not in body:
            raise APIError(400, f"Missing required parameter: '{name}'.", param=name, code="missing_required_parameter")
    for name, v in body.items():
        if (type(v) is dict or type(v) is list) and _too_deep(v, MAX_DEPTH - 1):
            raise APIError(
                400, f"'{name}' is nested more than {MAX_DEPTH} levels deep.", param=name, code="nesting_too_deep"
            )
    fields = schema.fields
    for name, v in body.items():
        spec = fields.get(name)
        if spec is not None:
            try:
                spec(v)
            except _Bad as bad:
                bad.path.append(name)
                raise bad.api_error() from None
    if schema is _CHAT and not body["messages"]:
        raise APIError(400, "'messages' must be a non-empty list.", param="messages", code="invalid_type")
