"""The interface every upstream implements: a remote OpenAI-compatible server, or the local engine."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Sequence
from typing import Any, Protocol

# A logits processor acts during sampling: (input_ids [1, L], scores [1, V]) -> scores, torch tensors,
# like transformers' LogitsProcessor. The policy picks them per request, before the upstream is known,
# so it hands over factories: the upstream builds each processor with its own tokenizer.
LogitsProcessor = Callable[[Any, Any], Any]
ProcessorFactory = Callable[[Any], LogitsProcessor]  # tokenizer -> processor


class UpstreamError(Exception):
    """The upstream failed. `kind` is one of connect, timeout, http, protocol."""

    def __init__(self, kind: str, message: str, status: int | None = None, body: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = status  # the upstream's own HTTP status, when it answered
        self.body = body  # the upstream's error body, when it sent an OpenAI-style one


class Upstream(Protocol):
    name: str
    runs_processors: bool  # whether `processors` take effect (only an engine that samples can apply them)

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def list_models(self) -> list[str]: ...

    async def complete(
        self, endpoint: str, body: dict[str, Any], *, processors: Sequence[ProcessorFactory] | None = None
    ) -> dict[str, Any]:
        """A whole (non-streaming) response object; raises UpstreamError."""
        ...

    def stream(
        self, endpoint: str, body: dict[str, Any], *, processors: Sequence[ProcessorFactory] | None = None
    ) -> AsyncGenerator[list[dict[str, Any]], None]:
        """Opens the stream (raising UpstreamError before the first chunk if the upstream refuses),
        then yields the SSE chunk objects in batches (all that arrived together); raises UpstreamError
        if the stream breaks before `[DONE]`."""
        ...
