"""OpenAI's chat completions and completions: the gateway's native dialect, relayed as the upstream speaks it."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

from cuirass.gateway.errors import APIError
from cuirass.gateway.exchange import CHAT, COMPLETIONS
from cuirass.gateway.sse import DONE, frame
from cuirass.upstream import UpstreamError


def encode_chunk(chunk: dict[str, Any]) -> bytes:
    try:
        return orjson.dumps(chunk)
    except TypeError:
        raise UpstreamError("protocol", "the model server sent a chunk that cannot be encoded") from None


class OpenAIFraming:
    """`data: <chunk>` per chunk and `data: [DONE]`; the trailing usage-only chunk only if the client asked."""

    def __init__(self, wants_usage: bool) -> None:
        self.wants_usage = wants_usage

    def chunk(self, chunk: dict[str, Any]) -> bytes:
        if not self.wants_usage:
            if not chunk.get("choices") and chunk.get("usage"):
                return b""  # the usage chunk the gateway asked the upstream for, for its own books
            chunk.pop("usage", None)
        return frame(encode_chunk(chunk))

    def end(self) -> bytes:
        return DONE

    def error(self, err: APIError) -> bytes:
        return frame(orjson.dumps(err.body()))


class OpenAISurface:
    def __init__(self, endpoint: str) -> None:
        assert endpoint in (CHAT, COMPLETIONS)
        self.endpoint = endpoint

    def api_key(self, headers: Any) -> str | None:
        value = headers.get("authorization")
        return value if isinstance(value, str) else None

    def to_chat(self, body: Any) -> Any:
        return body  # validated as it is, by the endpoint's schema

    def answer(self, resp: dict[str, Any], request: dict[str, Any], request_id: str) -> dict[str, Any]:
        return resp

    def framing(self, request: dict[str, Any], request_id: str) -> OpenAIFraming:
        opts = request.get("stream_options")
        return OpenAIFraming(bool(opts.get("include_usage")) if isinstance(opts, dict) else False)

    def error_response(self, err: APIError) -> Response:
        return err.response()


CHAT_SURFACE = OpenAISurface(CHAT)
COMPLETIONS_SURFACE = OpenAISurface(COMPLETIONS)
