"""Slow or endless request headers (slowloris) are answered by the server itself: 408 on a deadline, 431 on size."""

from __future__ import annotations

import socket
import time

import openai

from tests.conftest import Gateway

MESSAGES = [{"role": "user", "content": "Hello"}]


def _read_all(sock: socket.socket, limit_s: float) -> bytes:
    sock.settimeout(limit_s)
    got = b""
    try:
        while chunk := sock.recv(65536):
            got += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return got


def test_half_sent_headers_get_408_and_the_server_keeps_serving(make_gateway) -> None:  # type: ignore[no-untyped-def]
    gw: Gateway = make_gateway(server={"header_timeout_s": 1.0})
    stalled = []
    for _ in range(20):  # a small slowloris: headers that never end
        s = socket.create_connection(("127.0.0.1", gw.port))
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nx-slow: ")
        stalled.append(s)
    idle = socket.create_connection(("127.0.0.1", gw.port))  # connects and never sends a byte
    c = openai.OpenAI(base_url=gw.base_url, api_key=gw.key, max_retries=0)
    assert c.chat.completions.create(model="m", messages=MESSAGES, max_tokens=3).choices[0].message.content
    t0 = time.monotonic()
    answers = [_read_all(s, 5) for s in [*stalled, idle]]
    assert time.monotonic() - t0 < 5
    for a in answers:
        assert a.startswith(b"HTTP/1.1 408"), a[:100]
        assert b'"code":"request_timeout"' in a
    for s in [*stalled, idle]:
        s.close()
    assert c.chat.completions.create(model="m", messages=MESSAGES, max_tokens=3).choices[0].message.content


def test_headers_past_the_cap_get_431(make_gateway) -> None:  # type: ignore[no-untyped-def]
    gw: Gateway = make_gateway()
    s = socket.create_connection(("127.0.0.1", gw.port))
    s.sendall(b"GET /health/liveness HTTP/1.1\r\nhost: x\r\n")
    try:
        for _ in range(100):  # 100 KB of header lines, never finished
            s.sendall(b"x-pad: " + b"a" * 1000 + b"\r\n")
    except OSError:
        pass  # the server closed the connection on us: that is the point
    answer = _read_all(s, 5)
    s.close()
    assert answer.startswith(b"HTTP/1.1 431"), answer[:100]


def _one_response(sock: socket.socket) -> bytes:
    """Exactly one HTTP response (headers and content-length body), however the bytes are split."""
    sock.settimeout(5)
    got = b""
    while b"\r\n\r\n" not in got:
        got += sock.recv(65536)
    head, _, body = got.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
    )
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def test_kept_alive_connection_serves_several_requests(gateway: Gateway) -> None:
    """The header deadline restarts with each request on a kept-alive connection, and never cuts a good one."""
    s = socket.create_connection(("127.0.0.1", gateway.port))
    for _ in range(3):
        s.sendall(b"GET /health/liveness HTTP/1.1\r\nhost: x\r\n\r\n")
        answer = _one_response(s)
        assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b'{"status":"ok"}')
    s.close()
