"""Time to first token of streamed chat completions, one request at a time (an aiohttp client on uvloop).

TTFT is the time from sending the request to the first SSE event whose first choice carries non-empty
`delta.content`; `total` is the time to the end of the stream. The client's own cost is the same for
every target, so differences between targets are what the gateway adds.
"""

from __future__ import annotations

import time
from typing import Any

import orjson


def _has_token(line: bytes) -> bool:
    if not line.startswith(b"data:"):
        return False
    payload = line[5:].strip()
    if payload == b"[DONE]":
        return False
    try:
        chunk = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return False
    choices = chunk.get("choices") or []
    return bool(choices) and bool((choices[0].get("delta") or {}).get("content"))


async def _measure(url: str, body: bytes, key: str | None, n: int, warmup: int) -> dict[str, Any]:
    import aiohttp

    headers = {"content-type": "application/json"}
    if key:
        headers["authorization"] = f"Bearer {key}"
    ttft: list[float] = []
    total: list[float] = []
    bad = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as sess:
        for i in range(warmup + n):
            t0 = time.perf_counter()
            first = None
            done = False
            async with sess.post(url, data=body, headers=headers) as resp:
                async for line in resp.content:
                    if first is None and _has_token(line):
                        first = time.perf_counter() - t0
                    if line.startswith(b"data: [DONE]"):
                        done = True
                ok = resp.status == 200 and first is not None and done
            end = time.perf_counter() - t0
            if i < warmup:
                continue
            if not ok:
                bad += 1
                continue
            ttft.append(first)  # type: ignore[arg-type]
            total.append(end)
    return {"requests": len(ttft), "errors": bad, **_pcts("ttft", ttft), **_pcts("total", total)}


def _pcts(name: str, xs: list[float]) -> dict[str, float | None]:
    if not xs:
        return {f"{name}_p50_ms": None, f"{name}_p99_ms": None}
    xs = sorted(xs)
    return {
        f"{name}_p50_ms": 1000 * xs[len(xs) // 2],
        f"{name}_p99_ms": 1000 * xs[min(len(xs) - 1, int(len(xs) * 0.99))],
    }


def measure_ttft(url: str, body: bytes, key: str | None, n: int = 200, warmup: int = 20) -> dict[str, Any]:
    import uvloop

    return uvloop.run(_measure(url, body, key, n, warmup))
