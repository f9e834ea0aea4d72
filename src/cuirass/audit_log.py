"""A tamper-evident, append-only log of security-relevant events (key epochs, cohort moves, verdicts).

Each record is chained to the one before it:

    record  = {seq, ts, kind, data, prev_hash}           seq = 1, 2, 3, ...; prev_hash of seq 1 = GENESIS
    hash    = SHA-256(prev_hash || canonical_json(record))
    canonical_json: sorted keys, no spaces, UTF-8, no NaN (RFC 8785 in spirit; floats as Python's repr,
                    the shortest string that round-trips, so a stored or exported record re-hashes the same)

Editing a record changes its hash; deleting, inserting or reordering records breaks the seq run and the
prev_hash links. What a chain cannot show on its own is a rewrite of the whole tail by someone who can
write the store: publish the head (`seq:hash`, printed by `cuirass audit verify-log`) somewhere outside
the operator's control, and check against it later (`--expect-head`).  This is the hash-chained log of
Schneier & Kelsey, "Secure Audit Logs to Support Computer Forensics" (ACM TISSEC 1999), without the keys.

Stored in SQL (table `audit_log`, beside the event log), not in a file: an override and its audit record
commit in one transaction (both or neither), every gateway worker and replica shares one chain on
PostgreSQL, and the JSON-lines form (`export`, `verify_lines`) is produced on demand for third parties.
Appends are operator- or batch-driven (overrides, rotations, checkpoints), never per request.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from cuirass.db import metadata

GENESIS = "0" * 64
_LOCK_ID = 0x63756972  # PostgreSQL advisory lock serialising appends ("cuir")

audit_table = sa.Table(
    "audit_log",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("ts", sa.Float, nullable=False),
    sa.Column("kind", sa.String(64), nullable=False, index=True),
    sa.Column("data", sa.Text, nullable=False),  # canonical JSON of the record's data
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)


def canonical(value: Any) -> bytes:
    """The canonical JSON bytes of plain data (the form that is hashed)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def record_hash(seq: int, ts: float, kind: str, data: Any, prev_hash: str) -> str:
    """SHA-256(prev_hash || canonical JSON of {seq, ts, kind, data, prev_hash}), hex."""
    body = canonical({"seq": seq, "ts": ts, "kind": kind, "data": data, "prev_hash": prev_hash})
    return hashlib.sha256(prev_hash.encode("ascii") + body).hexdigest()


@dataclasses.dataclass(frozen=True, slots=True)
class Problem:
    line: int  # 1-based position in the listing (the line of an exported file)
    seq: int | None
    message: str


@dataclasses.dataclass(frozen=True, slots=True)
class Verification:
    ok: bool
    n_records: int
    head: str | None  # "seq:hash" of the last record, to publish as an anchor
    problems: list[Problem]

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "n_records": self.n_records,
            "head": self.head,
            "problems": [dataclasses.asdict(p) for p in self.problems],
        }


def verify_records(records: Iterable[dict[str, Any] | str], expect_head: str | None = None) -> Verification:
    """Check a listing of records in order. A string item is a line that could not be parsed.

    After a break the check re-synchronises on the record as found, so one deleted line gives one
    problem rather than a cascade. `expect_head` ("seq:hash", published earlier) must still be in the chain.
    """
    problems: list[Problem] = []
    prev_hash, prev_seq, n, head = GENESIS, 0, 0, None
    anchor_seen = expect_head is None
    for line, rec in enumerate(records, 1):
        n += 1
        if isinstance(rec, str):
            problems.append(Problem(line, None, f"not a valid record ({rec})"))
            continue
        try:
            seq, ts, kind, data = int(rec["seq"]), float(rec["ts"]), str(rec["kind"]), rec["data"]
            prev, stored = str(rec["prev_hash"]), str(rec["hash"])
        except (KeyError, TypeError, ValueError) as exc:
            problems.append(Problem(line, None, f"record lacks a field or has a wrong type ({exc})"))
            continue
        if seq != prev_seq + 1:
            what = "a record was deleted before this line" if seq > prev_seq + 1 else "out of order or duplicated"
            problems.append(Problem(line, seq, f"seq {seq} follows seq {prev_seq} ({what})"))
        if prev != prev_hash:
            problems.append(
                Problem(
                    line,
                    seq,
                    "prev_hash does not match the previous record's hash "
                    "(a record before this line was edited, deleted, inserted or moved)",
                )
            )
        try:
            computed = record_hash(seq, ts, kind, data, prev)
        except (TypeError, ValueError) as exc:
            computed = f"unhashable ({exc})"
        if computed != stored:
            problems.append(Problem(line, seq, "content does not match its hash (this record was edited)"))
        if expect_head is not None and f"{seq}:{stored}" == expect_head:
            anchor_seen = True
        prev_hash, prev_seq, head = stored, seq, f"{seq}:{stored}"
    if not anchor_seen:
        problems.append(
            Problem(
                n,
                None,
                f"the published head {expect_head} is not in the chain "
                "(the log was truncated or rewritten after it was published)",
            )
        )
    return Verification(not problems, n, head, problems)


def parse_lines(lines: Iterable[bytes | str]) -> Iterator[dict[str, Any] | str]:
    """Records of an exported JSON-lines file; unparsable lines come back as a short reason."""
    for raw in lines:
        text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
        if not text.strip():
            yield "empty line"
            continue
        try:
            rec = json.loads(text)
        except json.JSONDecodeError as exc:
            yield f"invalid JSON: {exc.msg} at column {exc.colno}"
            continue
        yield rec if isinstance(rec, dict) else "not a JSON object"


def verify_file(path: Path, expect_head: str | None = None) -> Verification:
    """Verify an exported log (JSON lines); problems name the file's line numbers."""
    with open(path, "rb") as fh:
        return verify_records(parse_lines(fh.read().splitlines()), expect_head)


class AuditLog:
    """The chained log in SQL. `append` is cheap (one read of the head, one insert)."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def append(self, kind: str, data: Any, conn: sa.Connection | None = None) -> dict[str, Any]:
        """Append one record and return it. Pass `conn` to commit it with the caller's own writes.

        Appends are serialised: an advisory lock on PostgreSQL; on SQLite the database's single writer
        (do a write before appending in a shared transaction), and a retry when a concurrent append won.
        """
        canonical(data)  # fail early on data that cannot be hashed
        if conn is not None:
            return self._append(conn, kind, data)
        for attempt in range(20):
            try:
                with self.engine.begin() as own:
                    return self._append(own, kind, data)
            except (sa.exc.IntegrityError, sa.exc.OperationalError):
                if attempt == 19:
                    raise
                time.sleep(0.01 * (attempt + 1))
        raise AssertionError("unreachable")

    def _append(self, conn: sa.Connection, kind: str, data: Any) -> dict[str, Any]:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_ID})
        last = conn.execute(
            sa.select(audit_table.c.seq, audit_table.c.hash).order_by(audit_table.c.seq.desc()).limit(1)
        ).first()
        seq, prev = (1, GENESIS) if last is None else (last.seq + 1, last.hash)
        ts = time.time()
        rec = {
            "seq": seq,
            "ts": ts,
            "kind": kind,
            "data": data,
            "prev_hash": prev,
            "hash": record_hash(seq, ts, kind, data, prev),
        }
        conn.execute(
            audit_table.insert().values(
                seq=seq, ts=ts, kind=kind, data=canonical(data).decode(), prev_hash=prev, hash=rec["hash"]
            )
        )
        return rec

    def records(self, kind: str | None = None) -> Iterator[dict[str, Any]]:
        """Every record in seq order (as hashed: data parsed back from its canonical JSON)."""
        q = sa.select(audit_table).order_by(audit_table.c.seq)
        if kind is not None:
            q = q.where(audit_table.c.kind == kind)
        with self.engine.connect() as conn:
            for r in conn.execute(q):
                yield {
                    "seq": r.seq,
                    "ts": r.ts,
                    "kind": r.kind,
                    "data": json.loads(r.data),
                    "prev_hash": r.prev_hash,
                    "hash": r.hash,
                }

    def last(self, kind: str) -> dict[str, Any] | None:
        """The newest record of one kind."""
        q = sa.select(audit_table).where(audit_table.c.kind == kind).order_by(audit_table.c.seq.desc()).limit(1)
        with self.engine.connect() as conn:
            r = conn.execute(q).first()
        return (
            None
            if r is None
            else {
                "seq": r.seq,
                "ts": r.ts,
                "kind": r.kind,
                "data": json.loads(r.data),
                "prev_hash": r.prev_hash,
                "hash": r.hash,
            }
        )

    def verify(self, expect_head: str | None = None) -> Verification:
        return verify_records(self.records(), expect_head)

    def export(self, path: Path) -> int:
        """Write the log as JSON lines (one record per line, fsynced); returns the number of records."""
        n = 0
        with open(path, "wb") as fh:
            for rec in self.records():
                fh.write(canonical(rec) + b"\n")
                n += 1
            fh.flush()
            os.fsync(fh.fileno())
        return n
