"""An OpenAI-compatible server over HTTP (vLLM, Ollama, TGI, a hosted API, or `cuirass mock-upstream`).

aiohttp rather than httpx: through one pooled client at concurrency 32 on this 2-core machine it sustained
~12x httpx 0.28's request rate at ~1/12 of its CPU per request (about 100 vs 1,200 µs; ~5x at concurrency 1)
(bench/client_choice.py), and its StreamReader gives SSE lines cheaply.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Sequence
from typing import Any

import aiohttp
import orjson

from cuirass.config import UpstreamConfig
from cuirass.upstream.base import ProcessorFactory, UpstreamError


class HTTPUpstream:
    runs_processors = False  # a remote server samples by itself: logits processors cannot reach it

    def __init__(self, name: str, config: UpstreamConfig) -> None:
        assert config.base_url is not None
        self.name = name
        self.base_url = config.base_url.rstrip("/")
        self.config = config
        self._headers = {"content-type": "application/json"}
        if config.api_key is not None:
            self._headers["authorization"] = f"Bearer {config.api_key.get_secret_value()}"
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self.config.max_connections, ttl_dns_cache=300)
            timeout = aiohttp.ClientTimeout(
                total=None, sock_connect=self.config.connect_timeout_s, sock_read=self.config.read_timeout_s
            )
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=timeout, json_serialize=lambda o: orjson.dumps(o).decode()
            )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("upstream not started")
        return self._session

    async def list_models(self) -> list[str]:
        try:
            async with self.session.get(f"{self.base_url}/models", headers=self._headers) as resp:
                data = await self._read_json(resp)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise _translate(exc) from None
        try:
            return [m["id"] for m in data["data"]]
        except (KeyError, TypeError):
            raise UpstreamError("protocol", "upstream /models answer is not an OpenAI model list") from None

    async def complete(
        self, endpoint: str, body: dict[str, Any], *, processors: Sequence[ProcessorFactory] | None = None
    ) -> dict[str, Any]:
        try:
            async with self.session.post(
                self.base_url + endpoint.removeprefix("/v1"), data=orjson.dumps(body), headers=self._headers
            ) as resp:
                return await self._read_json(resp)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise _translate(exc) from None

    async def stream(
        self, endpoint: str, body: dict[str, Any], *, processors: Sequence[ProcessorFactory] | None = None
    ) -> AsyncGenerator[list[dict[str, Any]], None]:
        """Yield the SSE chunk objects in batches: every complete event that one network read brought.

        Batching lets the gateway relay a burst of chunks in one write instead of one write each.
        """
        try:
            async with self.session.post(
                self.base_url + endpoint.removeprefix("/v1"), data=orjson.dumps(body), headers=self._headers
            ) as resp:
                if resp.status != 200:
                    await self._read_json(resp)  # raises with the upstream's error
                buf = b""
                while True:
                    data = await resp.content.readany()
                    if not data:
                        raise UpstreamError("protocol", "upstream stream ended before completion")
                    buf += data
                    *lines, buf = buf.split(b"\n")
                    batch: list[dict[str, Any]] = []
                    for line in lines:
                        if not line.startswith(b"data:"):
                            continue  # blank separators, comments (": keep-alive"), event/id fields
                        payload = line[5:].strip()
                        if payload == b"[DONE]":
                            if batch:
                                yield batch
                            return
                        try:
                            batch.append(_chunk(payload))
                        except UpstreamError:
                            if batch:
                                yield batch  # deliver what came before the error
                            raise
                    if batch:
                        yield batch
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise _translate(exc) from None

    @staticmethod
    async def _read_json(resp: aiohttp.ClientResponse) -> dict[str, Any]:
        raw = await resp.read()
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            data = None
        if resp.status >= 400:
            body = data if isinstance(data, dict) and "error" in data else None
            msg = _error_message(body) if body else f"upstream answered HTTP {resp.status}"
            raise UpstreamError("http", msg, status=resp.status, body=body)
        if not isinstance(data, dict):
            raise UpstreamError("protocol", "upstream answer is not a JSON object")
        return data


def _chunk(payload: bytes) -> dict[str, Any]:
    try:
        chunk = orjson.loads(payload)
    except orjson.JSONDecodeError:
        raise UpstreamError("protocol", "upstream sent a malformed stream chunk") from None
    if not isinstance(chunk, dict):
        raise UpstreamError("protocol", "upstream sent a stream chunk that is not an object")
    if "error" in chunk:
        raise UpstreamError("http", _error_message(chunk), status=502, body=chunk)
    return chunk


def _error_message(body: dict[str, Any] | None) -> str:
    err = (body or {}).get("error")
    if isinstance(err, dict) and isinstance(message := err.get("message"), str):
        return message
    if isinstance(err, str):
        return err
    return "upstream error"


def _translate(exc: BaseException) -> UpstreamError:
    if isinstance(exc, asyncio.TimeoutError | aiohttp.ServerTimeoutError):
        return UpstreamError("timeout", "upstream timed out")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return UpstreamError("connect", "upstream unreachable")
    if isinstance(exc, aiohttp.ClientPayloadError | aiohttp.ServerDisconnectedError):
        return UpstreamError("protocol", "upstream connection broke mid-response")
    return UpstreamError("connect", f"upstream connection failed ({type(exc).__name__})")
