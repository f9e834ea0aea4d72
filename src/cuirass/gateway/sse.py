"""Server-sent events out to the client, with prompt cancellation when the client goes away.

Starlette's StreamingResponse only notices a disconnect when a write fails; a client that hangs up
while the upstream is still thinking would keep the upstream busy. Here a listener runs beside the
pump and cancels it (and with it the upstream request) as soon as `http.disconnect` arrives.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping

from starlette.types import Receive, Scope, Send

DONE = b"data: [DONE]\n\n"


def frame(payload: bytes) -> bytes:
    return b"data: " + payload + b"\n\n"


class SSEResponse:
    """An ASGI response that streams `body` (already framed bytes) as text/event-stream."""

    def __init__(self, body: AsyncIterator[bytes], headers: Mapping[str, str] | None = None) -> None:
        self.body = body
        self.headers = [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-cache"),
            (b"x-accel-buffering", b"no"),
        ] + [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        pump = asyncio.ensure_future(self._pump(send))
        listen = asyncio.ensure_future(self._listen(receive))
        try:
            done, _ = await asyncio.wait({pump, listen}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in (pump, listen):
                t.cancel()
            await asyncio.gather(pump, listen, return_exceptions=True)
            aclose = getattr(self.body, "aclose", None)
            if aclose is not None:
                await aclose()
        if pump in done and not pump.cancelled() and pump.exception() is not None:
            exc = pump.exception()
            if exc is not None and not isinstance(exc, OSError):  # a failed write is a client that left, not an error
                raise exc

    async def _pump(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.headers})
        async for chunk in self.body:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    @staticmethod
    async def _listen(receive: Receive) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
