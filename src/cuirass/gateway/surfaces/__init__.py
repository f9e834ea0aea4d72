"""API surfaces: the dialects a client may speak to the gateway, each mapped onto OpenAI chat completions.

Every request is served the same way whatever its surface (accounts, limits, policy, defenses, one event,
detection): a surface only translates at the edges. It turns its request into a chat-completions body
(`to_chat`), a finished chat completion into its own answer (`answer`), a stream of chat chunks into its
own events (`framing`), and an error into its own error shape (`error_response`). The event records the
translated chat body under the surface's own endpoint, so detection reads one format.

    openai.py     /v1/chat/completions and /v1/completions (no translation)
    anthropic.py  /v1/messages (Anthropic Messages API)
    responses.py  /v1/responses (OpenAI Responses API)

A surface reads hostile input: it checks each field's type before using it, names the field in a 400
when it is wrong, and does work linear in the body.
"""

from __future__ import annotations

from typing import Any, Protocol

from starlette.responses import Response

from cuirass.gateway.errors import APIError


class Framing(Protocol):
    """Turns the chat chunks of one stream into the bytes the client reads."""

    def chunk(self, chunk: dict[str, Any]) -> bytes:
        """The bytes for one chat chunk (b"" when it says nothing in this dialect)."""
        ...

    def end(self) -> bytes:
        """The bytes that close a stream that ended normally."""
        ...

    def error(self, err: APIError) -> bytes:
        """The bytes that close a stream cut by an error."""
        ...


class Surface(Protocol):
    endpoint: str  # the route, and the event's endpoint

    def api_key(self, headers: Any) -> str | None:
        """The Authorization header's value as the gateway checks it (`Bearer <key>`)."""
        ...

    def to_chat(self, body: Any) -> dict[str, Any]:
        """The chat-completions body for this request; an APIError (400) if it is malformed."""
        ...

    def answer(self, resp: dict[str, Any], request: dict[str, Any], request_id: str) -> dict[str, Any]:
        """A finished chat completion as this surface's answer to `request` (the body the client sent)."""
        ...

    def framing(self, request: dict[str, Any], request_id: str) -> Framing:
        """The framing of the stream that answers `request` (the body the client sent)."""
        ...

    def error_response(self, err: APIError) -> Response: ...


class ChunkFraming:
    """What every translating framing shares: its opening events once, the usage the last chunk reports,
    and the first choice's delta handed to `on_delta`."""

    def __init__(self) -> None:
        self.started = False
        self.usage = (0, 0)  # (prompt, completion) tokens

    def opening(self) -> bytes:
        raise NotImplementedError

    def on_delta(self, choice: dict[str, Any], delta: dict[str, Any], reasoning: str | None) -> bytes:
        raise NotImplementedError

    def begin(self) -> bytes:
        """The opening events if not sent yet."""
        if self.started:
            return b""
        self.started = True
        return self.opening()

    def chunk(self, chunk: dict[str, Any]) -> bytes:
        out = self.begin()
        if chunk.get("usage"):
            self.usage = usage_of(chunk)
        first = first_delta(chunk)
        return out if first is None else out + self.on_delta(*first)


def bad(message: str, param: str | None = None) -> APIError:
    """A 400 naming what is wrong with the request (the surface's own field names)."""
    return APIError(400, message, param=param, code="invalid_request")


def text_of(value: Any, param: str) -> str:
    """A string field, or a list of `{"type": "text", "text": ...}`-like parts joined, else a 400."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        out = []
        for i, part in enumerate(value):
            if not isinstance(part, dict) or not isinstance(part.get("text"), str):
                raise bad(f"'{param}[{i}]' must be a text block with a string 'text'.", f"{param}[{i}]")
            out.append(part["text"])
        return "\n".join(out)
    raise bad(f"'{param}' must be a string or a list of text blocks.", param)


def first_choice(resp: dict[str, Any]) -> dict[str, Any]:
    choices = resp.get("choices")
    first = choices[0] if isinstance(choices, list) and choices else {}
    return first if isinstance(first, dict) else {}


def first_delta(chunk: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], str | None] | None:
    """(choice, delta, reasoning text) of a chat chunk's first choice; None for a chunk of another choice
    (the surfaces answer with one choice, as the event records)."""
    choice = first_choice(chunk)
    if choice.get("index", 0) != 0:
        return None
    delta: dict[str, Any] = choice["delta"] if isinstance(choice.get("delta"), dict) else {}
    reasoning = delta.get("reasoning_content") or delta.get("reasoning")
    return choice, delta, reasoning if isinstance(reasoning, str) and reasoning else None


def usage_of(resp: dict[str, Any]) -> tuple[int, int]:
    """(prompt tokens, completion tokens) of a chat completion or its last chunk; 0 where not reported."""
    usage = resp.get("usage")
    if not isinstance(usage, dict):
        return 0, 0
    p, c = usage.get("prompt_tokens"), usage.get("completion_tokens")
    return (p if isinstance(p, int) else 0), (c if isinstance(c, int) else 0)
