"""The event log's console queries (`of_accounts`, `activity`) and the overrides' timeline, on SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from cuirass.events.record import Event
from cuirass.events.store import SqlEventLog, to_row
from cuirass.storage.migrate import make_engine
from cuirass.verdicts.store import VerdictStore
from tests.conftest import scratch_postgres


def _postgres_up() -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", 5432), timeout=1):
        return True
    return False


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'cuirass.db'}"
        return
    if not _postgres_up():
        pytest.skip("PostgreSQL is not running on 127.0.0.1:5432")
    with scratch_postgres("cuirass_console") as u:
        yield u


def test_of_accounts_and_activity(url: str) -> None:
    engine = make_engine(url)
    log = SqlEventLog(engine)
    events = [
        Event(
            ts=1000.0 + i,
            request_id=f"r{i}",
            account=("a", "b", "c")[i % 3],
            endpoint="/v1/chat/completions",
            model="m",
            messages=[{"role": "user", "content": f"q{i}"}],
            action="watermark" if i % 2 else "pass",
            shadowed=["block"] if i == 4 else None,
            status=200 if i != 5 else 502,
        )
        for i in range(9)
    ]
    log.append([to_row(e) for e in reversed(events)])  # written out of time order
    rows = log.of_accounts(["a", "b"], 4)
    assert [r["request_id"] for r in rows] == ["r3", "r4", "r6", "r7"]  # the newest four, oldest first
    assert rows[0]["messages"] == [{"role": "user", "content": "q3"}] and rows[1]["shadowed"] == ["block"]
    assert log.of_accounts(["nobody"], 10) == []
    seen = sorted(log.activity(1004.0))
    assert seen == [
        (1004.0, "pass", ["block"], 200),
        (1005.0, "watermark", None, 502),
        (1006.0, "pass", None, 200),
        (1007.0, "watermark", None, 200),
        (1008.0, "pass", None, 200),
    ]
    store = VerdictStore(engine)
    store.put_auto(
        {"account": a, "score": sc, "flagged": sc > 0.9, "reasons": [], "campaign": None, "first_flagged_ts": ts}
        for a, sc, ts in (("a", 0.99, 1001.0), ("b", 0.95, 900.0), ("c", 0.3, None), ("d", 0.4, 1002.0))
    )
    assert store.first_flags_since(1000.0) == [1001.0]  # d was flagged once but is not now
    store.override("a", "flag", "alice", "ticket 1")
    store.override("b", "clear", "bob", "ticket 2")
    assert [(o["account"], o["verdict"], o["by"]) for o in store.overrides_since(0)] == [
        ("a", "flag", "alice"),
        ("b", "clear", "bob"),
    ]
    assert store.overrides_since(2**40) == []
    engine.dispose()
