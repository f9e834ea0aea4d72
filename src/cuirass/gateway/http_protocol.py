"""uvicorn's httptools protocol with a deadline and a size cap on request headers.

uvicorn (0.55, httptools) times out neither a connection that never finishes its headers nor one whose
headers keep growing: `timeout_keep_alive` only starts after a response. One client holding thousands of
half-sent header blocks ("slowloris") would pin file descriptors and memory for ever. This protocol
answers such connections itself, before the application sees them:

- headers not complete `header_timeout_s` after the connection opened (or after the first byte of the
  next request on a kept-alive connection): 408 and close;
- more than `max_header_bytes` received before the headers are complete: 431 and close.

The body has its own deadline in the gateway (`server.body_timeout_s`, see gateway/proxy.read_body).
"""

from __future__ import annotations

import asyncio

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


def configure(header_timeout_s: float, max_header_bytes: int) -> None:
    """Set the limits for every connection this process accepts (called once per worker at app creation)."""
    GuardedHttpToolsProtocol.header_timeout_s = header_timeout_s
    GuardedHttpToolsProtocol.max_header_bytes = max_header_bytes


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    header_timeout_s: float = 10.0
    max_header_bytes: int = 64 * 1024

    _header_timer: asyncio.TimerHandle | None = None
    _reading_headers: bool = False
    _header_bytes: int = 0
    _refused: bool = False
    linger_s: float = 2.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # lingering after a refusal: read and drop, so the client sees the answer rather than a reset
        if self._reading_headers:
            self._header_bytes += len(data)
        super().data_received(data)
        # Checked after parsing: a chunk that completes the headers may carry body bytes as well.
        if self._reading_headers and self._header_bytes > self.max_header_bytes:
            self._refuse(431, "Request header fields too large.", "headers_too_large")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if not self._reading_headers:  # the next request on a kept-alive connection
            self._start_headers()

    def on_headers_complete(self) -> None:
        self._reading_headers = False
        self._stop_timer()
        super().on_headers_complete()

    def _start_headers(self) -> None:
        self._reading_headers = True
        self._header_bytes = 0
        self._stop_timer()
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._headers_too_slow)

    def _stop_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self._reading_headers:
            self._refuse(408, "The request headers did not arrive in time.", "request_timeout")

    def _refuse(self, status: int, message: str, code: str) -> None:
        """An OpenAI-style error written straight to the socket, then close."""
        self._reading_headers = False
        self._stop_timer()
        if self.transport.is_closing():
            return
        body = orjson.dumps(
            {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}}
        )
        reason = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}[status]
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n%s" % (status, reason, len(body), body)
        )
        # Closing with unread input would send a reset that can destroy the answer in the client's buffer:
        # end our side, drop what still arrives for a moment, then close.
        self._refused = True
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(self.linger_s, self.transport.close)
