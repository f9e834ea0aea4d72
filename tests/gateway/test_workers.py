"""Several worker processes share one data directory: every event lands once, metrics add up."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx
import yaml

from tests.conftest import ADMIN_KEY, MockUpstream, cuirass, free_port, wait_http


def test_two_workers(mock: MockUpstream, tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        yaml.safe_dump({"models": [{"name": "m", "upstream": {"base_url": mock.base_url, "model": "mock-model"}}]})
    )
    d = ["--data-dir", str(tmp_path / "data")]
    key = json.loads(cuirass("accounts", "create", "w", "--with-key", *d, "--json").stdout)["key"]
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "cuirass", "serve", "--config", str(cfg), *d, "--port", str(port), "--workers", "2"],
        env={**os.environ, "CUIRASS_ADMIN_KEY": ADMIN_KEY},
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/health/liveness", proc)
        n = 40
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"authorization": f"Bearer {key}"}) as c:
            for i in range(n):
                r = c.post(
                    "/v1/chat/completions",
                    json={"model": "m", "max_tokens": 3, "messages": [{"role": "user", "content": f"q{i}"}]},
                )
                assert r.status_code == 200
            text = c.get("/metrics").text
        line = next(
            x
            for x in text.splitlines()
            if x.startswith('cuirass_requests_total{endpoint="/v1/chat/completions",status="200"}')
        )
        assert float(line.split()[-1]) == n  # summed over both workers
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(40) == 0
    with sqlite3.connect(tmp_path / "data" / "cuirass.db") as conn:
        assert conn.execute("SELECT COUNT(*), COUNT(DISTINCT request_id) FROM events").fetchone() == (n, n)
