"""Issue 18, item 3: gateways publish every event to the bus, and the archive writer (`cuirass events
archive`, a real process) stores each exactly once in SQL and in Parquet, however often it is stopped,
killed or run again; `cuirass events export --format parquet` writes the same layout."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pyarrow.parquet as pq
import pytest

from cuirass.bus.jetstream import JetStreamSink, partition_of
from cuirass.events import parquet
from cuirass.events.store import events_table
from tests.bus.conftest import SHARED_NATS, stream_rows
from tests.conftest import ADMIN_KEY, Gateway


def _archive(data_dir: Path, stream: str, *args: str) -> subprocess.Popen[str]:
    """`cuirass events archive` as its own process, on a SQLite log under `data_dir`."""
    env = {**os.environ, "CUIRASS_EVENTS__BUS": SHARED_NATS, "CUIRASS_EVENTS__BUS_STREAM": stream}
    env["CUIRASS_ADMIN_KEY"] = ADMIN_KEY
    cmd = [sys.executable, "-m", "cuirass", "events", "archive", "--data-dir", str(data_dir), "--json", *args]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen[str], timeout: float = 60) -> dict[str, Any]:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    return json.loads(out)


def _sql_ids(data_dir: Path) -> list[str]:
    with sqlite3.connect(data_dir / "cuirass.db") as conn:
        return [r for (r,) in conn.execute("SELECT request_id FROM events ORDER BY seq")]


def _publish(stream: str, n: int, start: int = 0, days: int = 1) -> list[str]:
    """n events published straight to the stream (as a gateway's writer does), spread over `days` days."""
    sink = JetStreamSink(SHARED_NATS, stream, 4)
    base = 1_700_000_000.0
    rows = [
        {
            "ts": base + (i % days) * 86_400 + i * 0.001,
            "request_id": f"req-{i:06d}",
            "account": f"acct-{i % 13}",
            "endpoint": "/v1/chat/completions",
            "model": "m",
            "messages": [{"role": "user", "content": f"question {i}"}],
            "params": {"max_tokens": 4},
            "response": {"content": "ok", "finish_reason": "stop", "usage": None},
            "action": "pass",
            "status": 200,
        }
        for i in range(start, start + n)
    ]
    try:
        for k in range(0, n, 500):
            sink.append(rows[k : k + 500])
    finally:
        sink.close()
    return [r["request_id"] for r in rows]


def test_gateway_events_reach_sql_and_parquet_exactly_once(make_gateway, stream: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    gw: Gateway = make_gateway(events={"bus": SHARED_NATS, "bus_stream": stream}, detection={"enabled": False})
    c = openai.OpenAI(base_url=gw.base_url, api_key=gw.key, max_retries=0)
    ids = []
    for i in range(30):
        raw = c.chat.completions.with_raw_response.create(
            model="m", max_tokens=4, messages=[{"role": "user", "content": f"what is {i} plus {i}?"}]
        )
        assert raw.parse().choices[0].message.content
        ids.append(raw.headers["x-request-id"])
    ready = httpx.get(gw.base_url.removesuffix("/v1") + "/health/readiness").json()
    assert ready["status"] == "ready"
    assert ready["event_store"]["backend"] == "jetstream" and ready["event_store"]["reachable"] is True
    assert ready["store"]["reachable"] is True  # accounts and verdicts stay in SQL

    rows = stream_rows(SHARED_NATS, stream, expect=30)
    assert sorted(r["request_id"] for r in rows) == sorted(ids)
    assert gw.events() == []  # with a bus the gateway writes no event to its SQL log itself
    row = next(r for r in rows if r["request_id"] == ids[0])
    assert row["account"] == "tester" and row["status"] == 200 and row["messages"][0]["content"] == "what is 0 plus 0?"

    store, pq_dir = tmp_path / "archive", tmp_path / "parquet"
    summary = _finish(_archive(store, stream, "--parquet", str(pq_dir), "--until-idle", "2"))
    assert summary["messages"] == 30 and summary["sql_new"] == 30 and summary["parquet_rows"] == 30
    assert sorted(_sql_ids(store)) == sorted(ids)
    archived = list(parquet.read(pq_dir))
    assert sorted(r["request_id"] for r in archived) == sorted(ids)
    assert all(p.parent.name == f"day={parquet.day_of(time.time())}" for p in parquet.files(pq_dir))
    mine = next(r for r in archived if r["request_id"] == ids[0])
    assert mine == {k: row.get(k) for k in mine}  # the archived row is the published row, column for column

    # A second consumer over the same stream (as after losing every acknowledgement) stores nothing twice.
    again = _finish(_archive(store, stream, "--parquet", str(pq_dir), "--durable", "other", "--until-idle", "2"))
    assert again["messages"] == 30 and again["sql_new"] == 0 and again["parquet_skipped"] == 30
    assert len(_sql_ids(store)) == 30 and len(list(parquet.read(pq_dir))) == 30


def test_archive_killed_and_stopped_mid_stream_stores_each_event_once(stream: str, tmp_path: Path) -> None:
    ids = _publish(stream, 6000, days=3)
    store, pq_dir = tmp_path / "archive", tmp_path / "parquet"
    # kill -9 once it has written something: batches written and not acknowledged are delivered again.
    fast = ("--batch", "200", "--ack-wait", "2")  # what the killed one held comes back after 2 s
    proc = _archive(store, stream, "--parquet", str(pq_dir), *fast)
    deadline = time.monotonic() + 60
    while not parquet.files(pq_dir) and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    first = len(_sql_ids(store))
    assert 0 < first < len(ids), "the kill should land mid-stream"
    # SIGTERM: finishes the batch in hand, acknowledges it, prints its summary and exits 0.
    proc = _archive(store, stream, "--parquet", str(pq_dir), *fast)
    deadline = time.monotonic() + 60
    while len(_sql_ids(store)) == first and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    stopped = _finish(proc)
    assert stopped["messages"] > 0
    # The rest, until idle.
    _finish(_archive(store, stream, "--parquet", str(pq_dir), *fast, "--until-idle", "1"))
    sql = _sql_ids(store)
    assert len(sql) == len(set(sql)) == len(ids) and set(sql) == set(ids)
    rows = list(parquet.read(pq_dir))
    got = [r["request_id"] for r in rows]
    assert len(got) == len(set(got)) == len(ids), f"{len(got) - len(set(got))} duplicated, of {len(got)}"
    assert {p.parent.name for p in parquet.files(pq_dir)} == {
        "day=2023-11-14",
        "day=2023-11-15",
        "day=2023-11-16",
    }
    for r in rows:  # every file holds only its own day
        assert parquet.day_of(r["ts"]) in {"2023-11-14", "2023-11-15", "2023-11-16"}
    assert not list(pq_dir.rglob(".*")), "a temporary file was left behind"
    assert partition_of("acct-1", 4) == partition_of("acct-1", 4)


def test_a_restarted_archive_removes_what_a_killed_one_left_half_written(stream: str, tmp_path: Path) -> None:
    """The temporaries of a writer killed mid-file go at the next start; a live writer's stay."""
    ids = _publish(stream, 50, days=1)
    day = tmp_path / "parquet" / "day=2023-11-14"
    day.mkdir(parents=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = socket.gethostname()
    killed = day / f".part-{1:020d}-{200:020d}.parquet.{host}-{dead.pid}.tmp"
    abandoned = day / f".part-{201:020d}-{400:020d}.parquet.other-host-77.tmp"
    live = day / f".part-{401:020d}-{600:020d}.parquet.{host}-{os.getpid()}.tmp"
    for f in (killed, abandoned, live):
        f.write_bytes(b"PAR1 half a file")
    os.utime(abandoned, (time.time() - 2 * parquet.STALE_S,) * 2)
    proc = _archive(tmp_path / "archive", stream, "--parquet", str(tmp_path / "parquet"), "--until-idle", "1")
    _finish(proc)
    assert not killed.exists() and not abandoned.exists() and live.exists()
    assert sorted(r["request_id"] for r in parquet.read(tmp_path / "parquet")) == sorted(ids)


def test_export_parquet_round_trips(make_gateway, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    gw: Gateway = make_gateway(detection={"enabled": False})
    c = openai.OpenAI(base_url=gw.base_url, api_key=gw.key, max_retries=0)
    for i in range(12):
        c.chat.completions.create(model="m", max_tokens=4, messages=[{"role": "user", "content": f"q {i} ünïcode"}])
    c.completions.create(model="m", prompt="a completion", max_tokens=3)
    gw.events(expect=13)
    jsonl = tmp_path / "events.jsonl"
    gw.cli("events", "export", "--out", str(jsonl))
    out = tmp_path / "pq"
    res = json.loads(gw.cli("events", "export", "--format", "parquet", "--out", str(out), "--json").stdout)
    assert res["exported"] == 13
    expected = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert list(parquet.read(out)) == expected  # every column, every value, in log order

    files = parquet.files(out)
    table = pq.read_table(files[0])
    assert table.schema.equals(parquet.schema())
    assert list(table.column_names) == [str(c.name) for c in events_table.c if c.name != "seq"]
    assert isinstance(table.column("messages")[0].as_py(), str)  # JSON columns are JSON text
    again = gw.cli("events", "export", "--format", "parquet", "--out", str(out), check=False)
    assert again.returncode != 0 and "not an empty directory" in again.stderr


@pytest.mark.parametrize("args, message", [((), "events.bus is not set"), (("--no-sql",), "nothing to write")])
def test_archive_refuses_what_it_cannot_do(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    env = {**os.environ, "CUIRASS_EVENTS__BUS": SHARED_NATS if args else ""}
    res = subprocess.run(
        [sys.executable, "-m", "cuirass", "events", "archive", "--data-dir", str(tmp_path), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert res.returncode != 0 and message in res.stderr and "Traceback" not in res.stderr
