"""Issue 16, finding 2: one malformed event must not switch detection off, online (`detect watch`, also
after a restart, whose warm start reads the same event again) or offline (`detect run`)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time
from pathlib import Path

import openai

from tests.conftest import Gateway, cuirass
from tests.detect import scenario
from tests.gateway.test_hardening_events import _watchers

BAD_PART = [{"role": "user", "content": [{"type": "text", "text": 5}]}]


def _insert(gw: Gateway, request_id: str, messages: str) -> int:
    """Put a row straight into the store, as an old gateway or another writer could have left it."""
    with sqlite3.connect(gw.db_path) as conn:
        cur = conn.execute(
            "INSERT INTO events (ts, request_id, account, endpoint, model, messages, params, status) "
            "VALUES (?, ?, 'tester', '/v1/chat/completions', 'm', ?, '{}', 200)",
            (time.time(), request_id, messages),
        )
        return int(cur.lastrowid)


def _verdict(gw: Gateway, account: str, timeout: float = 15) -> float:
    """The score the detection service stored for `account` (the time it wrote it); waits for one."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with sqlite3.connect(gw.db_path) as conn:
            row = conn.execute("SELECT updated FROM verdicts WHERE account = ?", (account,)).fetchone()
        if row is not None:
            return float(row[0])
        time.sleep(0.1)
    raise AssertionError(f"no verdict for {account} within {timeout}s: detection is not running")


def _ask(gw: Gateway, who: str) -> None:
    key = json.loads(gw.cli("accounts", "create", who, "--id", who, "--with-key", "--json").stdout)["key"]
    openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0).chat.completions.create(
        model="m", max_tokens=2, messages=[{"role": "user", "content": "What should I cook tonight?"}]
    )


def test_malformed_events_do_not_stop_the_watcher(make_gateway) -> None:  # type: ignore[no-untyped-def]
    gw: Gateway = make_gateway(detection={"poll_interval_s": 0.1, "refresh_s": 0.2})
    (watcher,) = _watchers(gw)
    _insert(gw, "bad-part", json.dumps(BAD_PART))
    unreadable = _insert(gw, "bad-json", "{not json")
    _ask(gw, "after-bad")
    _verdict(gw, "after-bad")
    assert _watchers(gw, timeout=0) == [watcher]  # the same process: it never died
    letters = [json.loads(x) for x in (gw.data_dir / "dead-letters" / "detect.jsonl").read_text().splitlines()]
    assert [(d["seq"], d["request_id"]) for d in letters] == [(unreadable, "bad-json")]
    # A restart's warm start reads both events again, and goes on past them.
    os.kill(watcher, signal.SIGKILL)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and _watchers(gw, timeout=0) in ([], [watcher]):
        time.sleep(0.1)
    _ask(gw, "after-restart")
    _verdict(gw, "after-restart")


def test_detect_run_goes_past_a_malformed_record(tmp_path: Path) -> None:
    log = scenario.as_jsonl(scenario.benign(10, seed=5), tmp_path / "log.jsonl")
    first = json.loads(log.read_text().splitlines()[0])
    with open(log, "a") as fh:
        fh.write(json.dumps({**first, "request_id": "odd", "messages": BAD_PART}) + "\n")
        fh.write(
            json.dumps(
                {
                    **first,
                    "request_id": "odder",
                    "messages": [{"role": "system", "content": {"text": 1}}, "not a message", None],
                }
            )
            + "\n"
        )
    out = tmp_path / "report.json"
    r = cuirass("detect", "run", "--events", str(log), "--out", str(out), "--no-progress", "--json", check=False)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert json.loads(r.stdout)["events"] == len(log.read_text().splitlines())
    assert json.loads(out.read_text())["accounts"]
