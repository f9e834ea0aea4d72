"""Which pooled async HTTP client should the gateway use upstream? Measure, don't guess.

    .venv/bin/python bench/client_choice.py [--seconds 5] [--concurrency 32] [--rounds 2]

One client object (one connection pool) in one process on uvloop, `concurrency` tasks posting the
benchmark's chat body to the fixed nginx upstream for `seconds`; reported: requests/s and p50/p99 of
each call, best of `rounds` rounds (rounds alternate between clients, to spread machine noise). The
client process and nginx are pinned to different cores. Writes bench/results/client_choice-*.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import BENCH, Procs, chat_body, start_nginx

Call = Callable[[], Awaitable[bytes]]


async def _drive(call: Call, concurrency: int, seconds: float) -> dict[str, Any]:
    for _ in range(50):  # warm the pool
        await call()
    lat: list[float] = []
    stop = time.perf_counter() + seconds

    async def worker() -> None:
        while time.perf_counter() < stop:
            t = time.perf_counter()
            await call()
            lat.append(time.perf_counter() - t)

    t0, c0 = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    lat.sort()
    return {
        "rps": len(lat) / elapsed,
        "cpu_us_per_req": 1e6 * cpu / len(lat),
        "p50_ms": 1000 * lat[len(lat) // 2],
        "p99_ms": 1000 * lat[int(len(lat) * 0.99)],
        "requests": len(lat),
    }


async def aiohttp_default(url: str, body: bytes, c: int, s: float) -> dict[str, Any]:
    import aiohttp

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=512)) as sess:

        async def call() -> bytes:
            async with sess.post(url, data=body, headers={"content-type": "application/json"}) as r:
                return await r.read()

        return await _drive(call, c, s)


async def aiohttp_gateway(url: str, body: bytes, c: int, s: float) -> dict[str, Any]:
    """The session exactly as src/cuirass/upstream/http.py builds it."""
    from cuirass.config import UpstreamConfig
    from cuirass.upstream.http import HTTPUpstream

    up = HTTPUpstream("bench", UpstreamConfig(base_url=url.removesuffix("/chat/completions")))
    await up.start()
    payload = json.loads(body)
    try:

        async def call() -> bytes:
            await up.complete("/v1/chat/completions", payload)
            return b""

        return await _drive(call, c, s)
    finally:
        await up.close()


async def httpx_client(url: str, body: bytes, c: int, s: float) -> dict[str, Any]:
    import httpx

    limits = httpx.Limits(max_connections=512, max_keepalive_connections=512)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:

        async def call() -> bytes:
            r = await client.post(url, content=body, headers={"content-type": "application/json"})
            return r.content

        return await _drive(call, c, s)


CLIENTS: dict[str, Callable[[str, bytes, int, float], Awaitable[dict[str, Any]]]] = {
    "aiohttp": aiohttp_default,
    "aiohttp (cuirass HTTPUpstream)": aiohttp_gateway,
    "httpx": httpx_client,
}


def _version(mod: str) -> str:
    try:
        return __import__(mod).__version__
    except Exception:  # noqa: BLE001
        return "?"


def run_one(name: str, url: str, concurrency: int, seconds: float) -> dict[str, Any]:
    import uvloop

    return uvloop.run(CLIENTS[name](url, chat_body(False), concurrency, seconds))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    os.sched_setaffinity(0, {1})  # the client gets core 1; nginx core 0
    results: dict[str, list[dict[str, Any]]] = {n: [] for n in CLIENTS}
    with tempfile.TemporaryDirectory(prefix="cuirass-cc-") as td, Procs(Path(td)) as procs:
        port = start_nginx(procs, "0")
        url = f"http://127.0.0.1:{port}/json/v1/chat/completions"
        for r in range(args.rounds):
            for name in CLIENTS:
                res = run_one(name, url, args.concurrency, args.seconds)
                results[name].append(res)
                print(
                    f"round {r + 1}  {name:32s} {res['rps']:8.0f} req/s  {res['cpu_us_per_req']:5.0f} us CPU/req"
                    f"  p50 {res['p50_ms']:.2f} ms"
                    f"  p99 {res['p99_ms']:.2f} ms",
                    flush=True,
                )
    best = {n: max(rs, key=lambda x: x["rps"]) for n, rs in results.items()}
    base = best["httpx"]["rps"]
    print(f"\nbest of {args.rounds}, concurrency {args.concurrency}, one pooled client, uvloop, nginx fixed JSON:")
    for n, b in best.items():
        print(
            f"  {n:32s} {b['rps']:8.0f} req/s  ({b['rps'] / base:.2f}x httpx)  {b['cpu_us_per_req']:5.0f} us CPU/req  "
            f"median of rounds {statistics.median(x['rps'] for x in results[n]):.0f}"
        )
    out = BENCH / "results" / f"client_choice-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "concurrency": args.concurrency,
                "seconds": args.seconds,
                "rounds": results,
                "best": best,
                "versions": {
                    "aiohttp": _version("aiohttp"),
                    "httpx": _version("httpx"),
                    "python": platform.python_version(),
                },
            },
            indent=2,
        )
    )
    print(f"results: {out}")


if __name__ == "__main__":
    main()
