"""Issue 16, findings 1 and 5: no record stops the event writer, every request leaves exactly one event
(a client that hangs up mid-body, a body that cannot be sent on, a `kill -9` of serve under load), and
serve's children (workers, the detection service) die with it, are restarted, and run once per database."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import sqlalchemy as sa

from tests.conftest import ADMIN_KEY, Gateway, wait_http

MESSAGES = [{"role": "user", "content": "Tom has 3 apples and buys 4 more. How many?"}]
DEEP = "[" * 300 + "]" * 300  # orjson reads it; orjson (and so the store) refuses to write it back


def _deep_body(shape: str) -> bytes:
    head = '{"model": "m", "max_tokens": 2, "messages": ' + json.dumps(MESSAGES)
    if shape == "passed-through":  # an unknown field: validation (as of issue 16) let it through to the upstream
        return f'{head}, "x_extra": {DEEP}}}'.encode()
    return f'{head}, "stop": {DEEP}}}'.encode()  # a field validation checks: a 400


def _descendants(pid: int) -> set[int]:
    """Every live process below `pid` (Linux /proc)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, pp in parents.items() if pp in frontier} - found
        found |= frontier
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _watchers(gw: Gateway, timeout: float = 10) -> list[int]:
    deadline = time.monotonic() + timeout
    while True:
        pids = [p for p in _descendants(gw.proc.pid) if "detect watch" in _cmdline(p) and _alive(p)]
        if pids or time.monotonic() > deadline:
            return pids
        time.sleep(0.05)


def _holds_lock(pid: int, path: Path, timeout: float = 30) -> bool:
    """Whether `pid` takes the kernel's lock on `path` within `timeout` (read from /proc/locks, not by trying it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            st = path.stat()
            inode = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
            for line in Path("/proc/locks").read_text().splitlines():
                fields = line.split()
                if str(pid) in fields and inode in fields:
                    return True
        time.sleep(0.05)
    return False


def _wait_gone(pids: set[int], timeout: float = 10) -> set[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = {p for p in pids if _alive(p)}
        if not pids:
            break
        time.sleep(0.05)
    return pids


def _restart(gw: Gateway) -> None:
    """Start `cuirass serve` again on the same data directory and port."""
    gw.proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cuirass",
            "serve",
            "--config",
            str(gw.config_path),
            "--data-dir",
            str(gw.data_dir),
            "--port",
            str(gw.port),
        ],
        env={**os.environ, **gw.env},
        stderr=subprocess.PIPE,
    )
    wait_http(f"http://127.0.0.1:{gw.port}/health/liveness", gw.proc)


def _readiness(gw: Gateway) -> dict[str, Any]:
    return httpx.get(gw.base_url.removesuffix("/v1") + "/health/readiness").json()


@pytest.mark.parametrize("shape, spool", [("passed-through", True), ("rejected", True), ("rejected", False)])
def test_unencodable_field_does_not_stop_the_writer(make_gateway, shape: str, spool: bool) -> None:  # type: ignore[no-untyped-def]
    gw: Gateway = make_gateway(**({} if spool else {"events": {"spool": False}}))
    h = {"authorization": f"Bearer {gw.key}", "content-type": "application/json"}
    r = httpx.post(gw.base_url + "/chat/completions", content=_deep_body(shape), headers=h, timeout=10)
    assert r.status_code == 400, r.text  # refused with a reason, not a 500
    bad_id = r.headers["x-request-id"]
    c = openai.OpenAI(base_url=gw.base_url, api_key=gw.key, max_retries=0)
    for _ in range(20):
        c.chat.completions.create(model="m", messages=MESSAGES, max_tokens=2)
    rows = gw.events(expect=21)
    assert len(rows) == 21 and [r["status"] for r in rows[1:]] == [200] * 20
    bad = rows[0]
    assert bad["request_id"] == bad_id and bad["status"] == 400 and bad["account"] == "tester"
    assert "$cuirass_dropped" in json.dumps(bad["params"])  # the field that failed, replaced by a marker
    ready = _readiness(gw)
    assert ready["status"] == "ready" and ready["event_store"]["alive"] and ready["event_store"]["dead_letters"] == 1
    letters = [json.loads(x) for x in (gw.data_dir / "dead-letters" / "events.jsonl").read_text().splitlines()]
    assert [d["request_id"] for d in letters] == [bad_id] and "Recursion" in letters[0]["error"]
    metrics = httpx.get(gw.base_url.removesuffix("/v1") + "/metrics").text
    assert 'cuirass_dead_letters_total{stage="events"} 1.0' in metrics


def test_fields_nested_to_the_encoders_limit_are_stored_and_exported(make_gateway) -> None:  # type: ignore[no-untyped-def]
    """A value orjson can write alone but not inside its row (the row and the field add levels) is stored,
    marked where it cannot be kept, and every export of the log reads it: the fuzzer found this one."""
    gw: Gateway = make_gateway()
    h = {"authorization": f"Bearer {gw.key}", "content-type": "application/json"}
    statuses = []
    for depth in (252, 253, 254):
        body = '{"model": "m", "max_tokens": 2, "messages": ' + json.dumps(MESSAGES)
        body += ', "x_extra": ' + "[" * depth + "]" * depth + "}"
        statuses.append(httpx.post(gw.base_url + "/chat/completions", content=body, headers=h, timeout=10).status_code)
    assert set(statuses) <= {200, 400}  # 400 where the body is too deep to forward upstream
    rows = gw.events(expect=3)
    assert [r["status"] for r in rows] == statuses and {r["account"] for r in rows} == {"tester"}
    ids = [r["request_id"] for r in rows]
    admin = {"authorization": f"Bearer {ADMIN_KEY}"}
    r = httpx.get(gw.base_url.removesuffix("/v1") + "/admin/events", headers=admin, timeout=10)
    assert r.status_code == 200
    assert [json.loads(line)["request_id"] for line in r.text.splitlines()] == ids
    out = gw.data_dir.parent / "export.jsonl"
    gw.cli("events", "export", "--out", str(out))
    assert [json.loads(line)["request_id"] for line in out.read_text().splitlines()] == ids
    assert _readiness(gw)["event_store"]["alive"]


def test_client_disconnect_mid_body_leaves_one_event_and_no_traceback(make_gateway) -> None:  # type: ignore[no-untyped-def]
    gw: Gateway = make_gateway()
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", gw.port)) as s:
            s.sendall(
                f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {gw.key}\r\n"
                'Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"model": "m"'.encode()
            )
            time.sleep(0.1)
    openai.OpenAI(base_url=gw.base_url, api_key=gw.key, max_retries=0).chat.completions.create(
        model="m", messages=MESSAGES, max_tokens=2
    )
    rows = gw.events(expect=4)
    assert sorted(r["status"] for r in rows) == [200, 499, 499, 499]
    assert all("disconnect" in r["error"] for r in rows if r["status"] == 499)
    gw.stop()
    assert "Traceback" not in gw.stderr


@pytest.mark.parametrize("workers, tree", [(1, False), (2, False), (2, True)])
def test_kill_9_under_load_loses_no_answered_event(make_gateway, workers: int, tree: bool) -> None:  # type: ignore[no-untyped-def]
    """kill -9 of serve (with `tree`, of its workers too, as an OOM kill of the group would) under load."""
    # Nothing is flushed to the store on its own before the kill: every event must come from the spool.
    gw: Gateway = make_gateway(
        events={"flush_interval_s": 60.0, "batch_size": 100000},
        server={"workers": workers},
        detection={"poll_interval_s": 0.1},
    )
    watchers = _watchers(gw)
    assert len(watchers) == 1
    children = _descendants(gw.proc.pid)
    answered: list[str] = []
    enough = threading.Event()
    c = openai.OpenAI(base_url=gw.base_url, api_key=gw.key, max_retries=0, timeout=10)

    def one(i: int) -> None:
        if enough.is_set():
            return
        try:
            raw = c.chat.completions.with_raw_response.create(
                model="m", max_tokens=4, messages=[{"role": "user", "content": f"question {i}: what is {i} plus {i}?"}]
            )
            raw.parse()
        except openai.APIError:
            return  # not answered: the gateway died first
        answered.append(raw.headers["x-request-id"])
        if len(answered) >= 250:
            enough.set()

    with ThreadPoolExecutor(16) as pool:
        futures = [pool.submit(one, i) for i in range(400)]
        assert enough.wait(60)
        killed = gw.proc.pid
        for pid in children if tree else ():  # the workers first, so that none is told to stop gracefully
            if pid not in watchers:
                os.kill(pid, signal.SIGKILL)
        gw.proc.send_signal(signal.SIGKILL)
        gw.proc.wait(10)
        for f in futures:
            f.result()
    assert not _wait_gone(children), "serve's children outlived it"  # workers and the watcher went with it
    if workers == 1 or tree:  # the batches died in memory (workers that outlive serve are told to flush theirs)
        assert len(gw.events()) < len(answered)
    _restart(gw)
    rows = gw.events(expect=len(answered), timeout=20)
    ids = [r["request_id"] for r in rows]
    assert len(ids) == len(set(ids)), "an event was replayed twice"
    assert set(answered) <= set(ids), f"{len(set(answered) - set(ids))} answered requests have no event"
    if workers == 1:
        assert _readiness(gw)["event_store"]["replayed"] >= len(answered)
    old = {str(p) for p in children | {killed}}
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(p.name.split("-")[0] in old for p in (gw.data_dir / "spool").iterdir()):
        time.sleep(0.05)
    assert not [p.name for p in (gw.data_dir / "spool").iterdir() if p.name.split("-")[0] in old]


def test_watcher_is_restarted_and_never_doubled(make_gateway) -> None:  # type: ignore[no-untyped-def]
    gw: Gateway = make_gateway(detection={"poll_interval_s": 0.1})
    (first,) = _watchers(gw)
    second = gw.cli("detect", "watch", check=False)  # a second watcher on the same database: refused at once
    assert second.returncode != 0 and "already runs on this database" in second.stderr
    os.kill(first, signal.SIGKILL)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and _watchers(gw, timeout=0) in ([], [first]):
        time.sleep(0.1)
    (restarted,) = _watchers(gw, timeout=0)
    assert restarted != first
    assert _holds_lock(restarted, Path(f"{gw.db_path}.watch.lock"))  # a loaded machine may take seconds to start it
    assert _watchers(gw, timeout=0) == [restarted]  # it took the lock and runs: not refused, not doubled
    assert gw.cli("detect", "watch", check=False).returncode != 0
    gw.stop()
    assert "restarting it" in gw.stderr


def test_second_watcher_refused_on_postgresql(make_gateway) -> None:  # type: ignore[no-untyped-def]
    from tests.gateway.test_events import _postgres_url

    base = _postgres_url()
    if base is None:
        pytest.skip("PostgreSQL is not running on 127.0.0.1:5432")
    import uuid

    name = f"cuirass_test_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(base + "postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    try:
        gw: Gateway = make_gateway(storage={"url": base + name}, detection={"poll_interval_s": 0.1})
        assert len(_watchers(gw)) == 1
        deadline = time.monotonic() + 10
        while True:  # the first watcher takes its lock once its engine is up
            second = gw.cli("detect", "watch", check=False)
            if second.returncode != 0 or time.monotonic() > deadline:
                break
        assert second.returncode != 0 and "already runs on this database" in second.stderr
        gw.stop()
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.dispose()


# -- the writer itself, on a real SQLite store ------------------------------------------------------------


def _event(i: int, ts: float | None = None):  # type: ignore[no-untyped-def]
    from cuirass.events import Event

    return Event(
        ts=ts or time.time(),
        request_id=f"req-{i}",
        account="a",
        endpoint="/v1/chat/completions",
        model="m",
        messages=MESSAGES,
        status=200,
    )


def _stored(engine: sa.Engine) -> list[str]:
    with engine.connect() as conn:
        return [r[0] for r in conn.exec_driver_sql("SELECT request_id FROM events ORDER BY seq")]


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the thread ending is the point
def test_writer_thread_that_ends_is_restarted_without_losing_its_batch(tmp_path: Path) -> None:
    from cuirass.events.spool import Spool
    from cuirass.events.store import SqlEventLog
    from cuirass.events.writer import EventWriter
    from cuirass.storage.migrate import make_engine

    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    calls = []

    def on_written(n: int, depth: int) -> None:
        calls.append(n)
        if len(calls) == 1:
            raise SystemExit  # ends the thread, as no Exception handler catches it

    w = EventWriter(SqlEventLog(engine), flush_interval_s=0.01, on_written=on_written, spool=Spool(tmp_path / "spool"))
    w.start()
    w.submit(_event(0))
    deadline = time.monotonic() + 5
    while w.alive and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not w.alive and _stored(engine) == ["req-0"]
    for i in range(1, 4):
        w.submit(_event(i))
    assert w.ensure_alive() and w.alive and w.restarts == 1
    w.close()
    assert _stored(engine) == ["req-0", "req-1", "req-2", "req-3"]
    assert not list((tmp_path / "spool").glob("*.jsonl"))  # all committed: nothing left to replay


def test_spool_replay_is_idempotent_and_shared_safely(tmp_path: Path) -> None:
    import orjson

    from cuirass.events.spool import Spool
    from cuirass.events.store import SqlEventLog, to_row
    from cuirass.events.writer import EventWriter
    from cuirass.storage.migrate import make_engine

    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    dead = Spool(tmp_path / "spool", segment_bytes=4000)  # a process that dies with everything spooled
    rows = [to_row(_event(i, ts=1000.0 + i)) for i in range(300)]
    for row in rows:
        dead.append(orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE))
    with open(max((tmp_path / "spool").glob("*.jsonl")), "ab") as fh:
        fh.write(b'{"ts": 1.0, "request_id": "torn')  # the last line, cut by a machine crash
    dead.close()  # what death does: the segments stay, their locks go
    assert len(list((tmp_path / "spool").glob("*.jsonl"))) > 3
    SqlEventLog(engine).append(rows[::2])  # the dead process had committed every other event
    writers = [EventWriter(SqlEventLog(engine), spool=Spool(tmp_path / "spool")) for _ in range(3)]
    threads = [threading.Thread(target=w._replay_orphans) for w in writers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    ids = _stored(engine)
    assert sorted(ids) == sorted(r["request_id"] for r in rows) and len(ids) == len(set(ids))
    assert sum(w.replayed for w in writers) == 150
    assert sum(w.dead_letters.count for w in writers) == 1  # the torn line
    assert not list((tmp_path / "spool").glob("*.jsonl"))
    sqlite3.connect(tmp_path / "db.sqlite").close()
