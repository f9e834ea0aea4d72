"""The hash-chained audit log: every edit, deletion, insertion or reordering is caught, and where."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from cuirass.audit_log import GENESIS, AuditLog, audit_table, record_hash, verify_file
from cuirass.cli import main
from cuirass.events.store import SqlEventLog, events_table
from cuirass.marks.epochs import EpochStore
from cuirass.prove.cohorts import checkpoint
from cuirass.storage.migrate import make_engine
from cuirass.verdicts.store import VerdictStore


@pytest.fixture
def log(tmp_path: Path) -> AuditLog:
    engine = make_engine(f"sqlite:///{tmp_path / 'data' / 'cuirass.db'}")
    log = AuditLog(engine)
    for i in range(6):
        log.append("test", {"i": i, "note": "ünïcode", "x": 0.1 * i})
    return log


def _export(log: AuditLog, path: Path) -> list[bytes]:
    assert log.export(path) == 6
    assert verify_file(path).ok
    return path.read_bytes().splitlines(keepends=True)


def _verify(tmp_path: Path, path: Path) -> tuple[int, str]:
    res = CliRunner().invoke(main, ["audit", "verify-log", "--data-dir", str(tmp_path / "data"), "--file", str(path)])
    return res.exit_code, res.output


def test_chain_is_the_documented_hash(log: AuditLog) -> None:
    recs = list(log.records())
    assert recs[0]["prev_hash"] == GENESIS and [r["seq"] for r in recs] == [1, 2, 3, 4, 5, 6]
    for a, b in itertools.pairwise(recs):
        assert b["prev_hash"] == a["hash"]
    r = recs[2]
    assert r["hash"] == record_hash(r["seq"], r["ts"], r["kind"], r["data"], r["prev_hash"])
    assert log.verify().ok


def test_flipped_byte(log: AuditLog, tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    lines = _export(log, path)
    raw = bytearray(b"".join(lines))
    at = len(b"".join(lines[:3])) + lines[3].index(b'"i":3') + 4  # the digit of record 4's data
    raw[at] ^= 0x01  # '3' -> '2'
    path.write_bytes(bytes(raw))
    code, out = _verify(tmp_path, path)
    assert code == 1 and "line 4 (seq 4): content does not match its hash" in out


def test_flipped_byte_that_breaks_json(log: AuditLog, tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    lines = _export(log, path)
    lines[1] = lines[1].replace(b"{", b"[", 1)
    path.write_bytes(b"".join(lines))
    code, out = _verify(tmp_path, path)
    assert code == 1 and "line 2: not a valid record" in out


def test_deleted_line(log: AuditLog, tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    lines = _export(log, path)
    path.write_bytes(b"".join(lines[:2] + lines[3:]))
    code, out = _verify(tmp_path, path)
    assert code == 1 and "line 3 (seq 4): seq 4 follows seq 2 (a record was deleted" in out
    assert "line 4" not in out  # re-synchronised: one deletion, one place


def test_swapped_pair(log: AuditLog, tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    lines = _export(log, path)
    lines[2], lines[3] = lines[3], lines[2]
    path.write_bytes(b"".join(lines))
    code, out = _verify(tmp_path, path)
    assert code == 1 and "line 3 (seq 4)" in out and "line 4 (seq 3)" in out


def test_inserted_record_even_with_a_valid_hash(log: AuditLog, tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    lines = _export(log, path)
    prev = json.loads(lines[2])
    fake = {"seq": 4, "ts": prev["ts"], "kind": "test", "data": {"forged": True}, "prev_hash": prev["hash"]}
    fake["hash"] = record_hash(**{k: fake[k] for k in ("seq", "ts", "kind", "data", "prev_hash")})
    path.write_bytes(b"".join(lines[:3]) + json.dumps(fake).encode() + b"\n" + b"".join(lines[3:]))
    code, out = _verify(tmp_path, path)
    assert code == 1 and "line 5 (seq 4)" in out


def test_edit_in_the_database_and_truncation_against_an_anchor(log: AuditLog, tmp_path: Path) -> None:
    head = log.verify().head
    with log.engine.begin() as conn:
        conn.execute(audit_table.update().where(audit_table.c.seq == 2).values(kind="other"))
    bad = log.verify()
    assert not bad.ok and (bad.problems[0].line, bad.problems[0].seq) == (2, 2)
    with log.engine.begin() as conn:
        conn.execute(audit_table.update().where(audit_table.c.seq == 2).values(kind="test"))
        conn.execute(audit_table.delete().where(audit_table.c.seq == 6))
    assert log.verify().ok  # a clean cut of the tail looks fine on its own ...
    assert not log.verify(expect_head=head).ok  # ... but not against the published head
    res = CliRunner().invoke(main, ["audit", "verify-log", "--data-dir", str(tmp_path / "data"), "--expect-head", head])
    assert res.exit_code == 1 and "truncated or rewritten" in res.output


def test_overrides_rotations_and_checkpoints_are_recorded(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'data' / 'cuirass.db'}")
    VerdictStore(engine).override("acct-1", "flag", "alice", "shared card with campaign 7")
    EpochStore(engine).rotate("bob", "scheduled")
    with engine.begin() as conn:
        conn.execute(
            events_table.insert(),
            [
                {
                    "ts": 1.0,
                    "request_id": "a",
                    "account": "acct-1",
                    "endpoint": "/v1/completions",
                    "model": "m",
                    "messages": [],
                    "params": {},
                    "cohort": "c001",
                    "actions": ["watermark"],
                },
                {
                    "ts": 2.0,
                    "request_id": "b",
                    "account": "acct-1",
                    "endpoint": "/v1/completions",
                    "model": "m",
                    "messages": [],
                    "params": {},
                    "cohort": "h000",
                    "actions": ["watermark", "canary"],
                },
            ],
        )
    first = checkpoint(SqlEventLog(engine), AuditLog(engine))
    again = checkpoint(SqlEventLog(engine), AuditLog(engine))
    log = AuditLog(engine)
    kinds = [r["kind"] for r in log.records()]
    assert kinds == ["verdict_override", "key_epoch", "cohort_move", "checkpoint", "checkpoint"]
    recs = list(log.records())
    assert recs[0]["data"] == {
        "account": "acct-1",
        "verdict": "flag",
        "by": "alice",
        "reason": "shared card with campaign 7",
    }
    assert recs[1]["data"]["epoch"] == 1 and recs[2]["data"]["to"] == "h000"
    assert first["defenses_applied"] == {"canary@h000": 1, "watermark@c001": 1, "watermark@h000": 1}
    assert again["events"] == 0 and again["moves"] == 0
    assert log.verify().ok
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(audit_table)).scalar() == 5
