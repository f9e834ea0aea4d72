"""The interface every upstream implements (remote HTTP today; a local engine later)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol


class UpstreamError(Exception):
    """The upstream failed. `kind` is one of connect, timeout, http, protocol."""

    def __init__(self, kind: str, message: str, status: int | None = None, body: dict | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = status  # the upstream's own HTTP status, when it answered
        self.body = body  # the upstream's error body, when it sent an OpenAI-style one


class Upstream(Protocol):
    name: str

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def list_models(self) -> list[str]: ...

    async def complete(self, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
        """A whole (non-streaming) response object; raises UpstreamError."""
        ...

    def stream(self, endpoint: str, body: dict[str, Any]) -> AsyncIterator[list[dict[str, Any]]]:
        """Opens the stream (raising UpstreamError before the first chunk if the upstream refuses),
        then yields the SSE chunk objects in batches (all that arrived together); raises UpstreamError
        if the stream breaks before `[DONE]`."""
        ...
