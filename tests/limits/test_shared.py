"""Per-key limits hold across the processes that serve a key: the `--workers` of one machine (SQLite file,
no configuration) and separate `cuirass serve` processes sharing one Redis; and what a client and an
operator see when Redis stops answering or dies, in either mode, and when it comes back."""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.conftest import Gateway, MockUpstream, free_port, gateway_config, wait_http
from tests.limits.conftest import RedisServer

BODY = {"model": "m", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 8}
QUIET = {"detection": {"enabled": False}}  # no detector beside each gateway: the machine is small


def post(base_url: str, key: str) -> httpx.Response:
    """One request on a connection of its own, so the kernel may hand it to any worker."""
    return httpx.post(f"{base_url}/chat/completions", json=BODY, headers={"authorization": f"Bearer {key}"}, timeout=30)


def statuses(responses: list[httpx.Response]) -> dict[int, int]:
    out: dict[int, int] = {}
    for r in responses:
        out[r.status_code] = out.get(r.status_code, 0) + 1
    return out


def metric(base_url: str, name: str, **labels: str) -> list[tuple[dict[str, str], float]]:
    """The samples of one metric whose labels include `labels`."""
    text = httpx.get(base_url.removesuffix("/v1") + "/metrics").text
    out = []
    for line in text.splitlines():
        m = re.fullmatch(rf"{name}\{{(.*)\}} (\S+)", line)
        if m:
            got = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
            if all(got.get(k) == v for k, v in labels.items()):
                out.append((got, float(m.group(2))))
    return out


def new_key(gw: Gateway, *args: str) -> str:
    return str(json.loads(gw.cli("keys", "create", "tester", *args, "--json").stdout)["key"])


def burst(base_urls: list[str], key: str, n: int) -> tuple[list[httpx.Response], float]:
    """`n` requests from 8 threads, spread over the gateways; and how long it took (seconds)."""
    t = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        out = list(pool.map(lambda i: post(base_urls[i % len(base_urls)], key), range(n)))
    return out, time.monotonic() - t


def tokens_used(base_url: str, key: str) -> int:
    r = post(base_url, key)
    assert r.status_code == 200
    return int(r.json()["usage"]["total_tokens"])


def sequential_until_refused(base_urls: list[str], key: str, most: int) -> tuple[int, float]:
    """Admitted requests before the first refusal, alternating gateways; and the time taken."""
    t = time.monotonic()
    for i in range(most):
        r = post(base_urls[i % len(base_urls)], key)
        if r.status_code == 429:
            assert r.json()["error"]["code"] == "rate_limit_exceeded" and "tokens" in r.json()["error"]["message"]
            return i, time.monotonic() - t
        assert r.status_code == 200
    return most, time.monotonic() - t


def check_shared(base_urls: list[str], probe: str, rpm_key: str, tpm_key: str, rpm: int, tpm: int) -> None:
    # Requests: a burst far over the limit; only the limit (plus what refilled meanwhile) gets through.
    got, took = burst(base_urls, rpm_key, 6 * rpm)
    counts = statuses(got)
    assert set(counts) <= {200, 429}, counts
    assert rpm <= counts.get(200, 0) <= rpm + math.floor(took * rpm / 60), (counts, took)
    # Tokens: each answer uses `per` tokens, charged after it; a request passes while the balance is positive.
    per = tokens_used(base_urls[0], probe)
    admitted, took = sequential_until_refused(base_urls, tpm_key, 4 * math.ceil(tpm / per))
    assert math.ceil(tpm / per) <= admitted <= math.ceil((tpm + took * tpm / 60) / per), (admitted, per, took)


def test_workers_of_one_machine_share_each_key_limit(mock: MockUpstream, tmp_path: Path) -> None:
    rpm, tpm = 6, 120
    gw = Gateway(tmp_path, gateway_config(mock, server={"workers": 2}, **QUIET), key_args=("--rpm", str(rpm)))
    try:
        check_shared([gw.base_url], new_key(gw), gw.key, new_key(gw, "--tpm", str(tpm)), rpm, tpm)
        # Both workers decided requests against the one file (one gauge series per worker).
        pids = {labels["pid"] for labels, v in metric(gw.base_url, "cuirass_limiter_backend_up", backend="sqlite")}
        assert len(pids) == 2, pids
        assert (gw.data_dir / "limits.db").exists()
    finally:
        gw.stop()


def test_gateways_sharing_redis_share_each_key_limit(
    mock: MockUpstream, tmp_path: Path, redis_server: RedisServer
) -> None:
    """Two `cuirass serve` processes, each with its own data directory, on one account store and one Redis."""
    rpm, tpm = 6, 120
    cfg = gateway_config(
        mock, storage={"url": f"sqlite:///{tmp_path / 'accounts.db'}"}, limits={"backend": redis_server.url}, **QUIET
    )
    env = {"CUIRASS_KEY_SECRET": "k" * 32}  # one key hashing secret for the fleet
    first = Gateway(tmp_path / "a", cfg, env=env, key_args=("--rpm", str(rpm)))
    second = Beside(first, tmp_path / "b", env)
    try:
        urls = [first.base_url, second.base_url]
        check_shared(urls, new_key(first), first.key, new_key(first, "--tpm", str(tpm)), rpm, tpm)
        for gw in (first, second):
            assert metric(gw.base_url, "cuirass_limiter_backend_up", backend="redis")[0][1] == 1
    finally:
        first.stop()
        second.stop()


class Beside:
    """Another `cuirass serve`, on the account store of a Gateway (whose account and keys it serves)."""

    def __init__(self, first: Gateway, tmp: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        args = ["--data-dir", str(tmp / "data"), "--port", str(self.port)]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cuirass", "serve", "--config", str(first.config_path), *args],
            env={**os.environ, **first.env, **env},
            stderr=subprocess.DEVNULL,
        )
        wait_http(f"http://127.0.0.1:{self.port}/health/liveness", self.proc)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(40)


def _until_refused(gw: Gateway, most: int) -> int:
    """Admitted requests before the first 429 (limits apply), at most `most`."""
    for i in range(most):
        r = post(gw.base_url, gw.key)
        if r.status_code == 429:
            assert "x-ratelimit-limit-requests" in r.headers and int(r.headers["retry-after"]) >= 1
            return i
        assert r.status_code == 200, r.text
    return most


def _timed(gw: Gateway, n: int) -> list[tuple[httpx.Response, float]]:
    out = []
    for _ in range(n):
        t = time.monotonic()
        r = post(gw.base_url, gw.key)
        out.append((r, time.monotonic() - t))
    return out


@pytest.mark.parametrize("mode", ["open", "closed"])
def test_redis_down_follows_the_mode_and_limits_return(make_gateway, redis_server: RedisServer, mode: str) -> None:  # type: ignore[no-untyped-def]
    rpm = 3
    gw = make_gateway(
        key_args=("--rpm", str(rpm)),
        limits={"backend": redis_server.url, "on_backend_down": mode, "backend_timeout_s": 0.2},
        **QUIET,
    )
    assert _until_refused(gw, 10) == rpm

    # Stopped (SIGSTOP: connections open, nothing answers): each request is decided within the timeout.
    redis_server.signal(signal.SIGSTOP)
    stalled = _timed(gw, 4)
    redis_server.signal(signal.SIGCONT)
    # Dead (connections refused).
    redis_server.kill()
    dead = _timed(gw, 4)
    for r, took in stalled + dead:
        assert took < 2.0
        if mode == "open":
            assert r.status_code == 200, r.text
        else:
            assert r.status_code == 503, r.text
            err = r.json()["error"]
            assert err["code"] == "rate_limit_unavailable" and err["type"] == "service_unavailable"
            assert int(r.headers["retry-after"]) >= 1
    errors = metric(gw.base_url, "cuirass_limiter_backend_errors_total", backend="redis", mode=mode)
    assert errors and errors[0][1] == len(stalled) + len(dead)
    assert metric(gw.base_url, "cuirass_limiter_backend_up", backend="redis")[0][1] == 0

    # Back (empty, as after a crash): limits apply again without a restart, from a full bucket.
    redis_server.start()
    time.sleep(1.2)  # the limiter asks a failed backend again after a second
    assert _until_refused(gw, 10) == rpm
    assert metric(gw.base_url, "cuirass_limiter_backend_up", backend="redis")[0][1] == 1
    gw.stop()
    said = [line for line in gw.stderr.splitlines() if "limits backend redis" in line]
    assert 2 <= len(said) <= 4, said  # down (rate-limited, not one line per request), then back
    assert "is down" in said[0] and "answers again" in said[-1]
