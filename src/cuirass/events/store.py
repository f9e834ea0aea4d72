"""The event log table and its readers (export), on the same SQL engine as the account store."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import sqlalchemy as sa

from cuirass.db import metadata
from cuirass.events.record import Event, content_hash

events_table = sa.Table(
    "events",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("ts", sa.Float, nullable=False, index=True),
    sa.Column("request_id", sa.String(64), nullable=False),
    sa.Column("account", sa.String(64), nullable=False, index=True),
    sa.Column("org", sa.String(200)),
    sa.Column("ip", sa.String(64)),
    sa.Column("user_agent", sa.Text),
    sa.Column("payment_fingerprint", sa.String(200)),
    sa.Column("account_created", sa.Float),
    sa.Column("endpoint", sa.String(64), nullable=False),
    sa.Column("model", sa.String(200), nullable=False),
    sa.Column("messages", sa.JSON, nullable=False),
    sa.Column("params", sa.JSON, nullable=False),
    sa.Column("response", sa.JSON),
    sa.Column("action", sa.String(32)),
    sa.Column("status", sa.Integer),
    sa.Column("latency_ms", sa.Float),
    sa.Column("ttft_ms", sa.Float),
    sa.Column("error", sa.Text),
    sa.Column("upstream", sa.String(16)),
    sa.Column("actions", sa.JSON),
    sa.Column("shadowed", sa.JSON),
    sa.Column("cohort", sa.String(16)),
)

_COLUMNS = [str(c.name) for c in events_table.c if c.name != "seq"]


def to_row(event: Event, retention: str = "full") -> dict[str, Any]:
    """The row for one event; with retention "hashes", message and response text become SHA-256 digests."""
    row = event.to_dict()
    if retention == "hashes":
        row["messages"] = [_hash_message(m) for m in event.messages]
        if event.response and isinstance(event.response.get("content"), str):
            row["response"] = {**event.response, "content": content_hash(event.response["content"])}
    return row


def _hash_message(message: Any) -> Any:
    if not isinstance(message, dict):  # not a chat message: keep no text of it either
        try:
            return content_hash(message if isinstance(message, str) else orjson.dumps(message).decode())
        except TypeError:  # JSON cannot hold it: there is nothing readable to keep
            return content_hash("")
    out = dict(message)
    content = message.get("content")
    if isinstance(content, str):
        out["content"] = content_hash(content)
    elif isinstance(content, list):
        out["content"] = [
            {**p, "text": content_hash(p["text"])} if isinstance(p, dict) and isinstance(p.get("text"), str) else p
            for p in content
        ]
    return out


_JSON_COLUMNS = frozenset(str(c.name) for c in events_table.c if isinstance(c.type, sa.JSON))


def insert_rows(conn: sa.Connection, rows: list[dict[str, Any]]) -> None:
    """Insert a batch through the driver's executemany with JSON pre-encoded by orjson.

    The writer thread spends most of its time here; SQLAlchemy's per-row bind processing cost about
    24 µs of CPU per event while holding the GIL (bench/profile_gateway.py), the raw executemany a
    fraction of that, and sqlite3 releases the GIL while it writes.
    """
    style = conn.dialect.paramstyle
    cast = "::json" if conn.dialect.name == "postgresql" else ""
    marks = ", ".join(
        ("?" if style == "qmark" else "%s") + (cast if name in _JSON_COLUMNS else "") for name in _COLUMNS
    )
    sql = f"INSERT INTO {events_table.name} ({', '.join(_COLUMNS)}) VALUES ({marks})"
    dumps = orjson.dumps
    data = [
        tuple(
            (None if row.get(n) is None else dumps(row[n]).decode()) if n in _JSON_COLUMNS else row.get(n)
            for n in _COLUMNS
        )
        for row in rows
    ]
    conn.exec_driver_sql(sql, data)


def absent_rows(conn: sa.Connection, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows whose request_id the table does not hold yet: what makes a spool replay idempotent.

    The lookup is bounded by the rows' own event times, so it walks the `ts` index over that span
    only (a replayed segment covers a minute or so) and needs no index on request_id.
    """
    if not rows:
        return []
    c = events_table.c
    times = [r["ts"] for r in rows]
    q = sa.select(c.request_id).where(
        c.ts >= min(times), c.ts <= max(times), c.request_id.in_(sorted({r["request_id"] for r in rows}))
    )
    have = set(conn.execute(q).scalars())
    return [r for r in rows if r["request_id"] not in have]


def minimal_row(row: dict[str, Any], error: str) -> dict[str, Any]:
    """The last resort for a row the store refuses: who, when, where and the outcome, without content,
    text clipped to its column; `error` says why the content is missing."""
    out: dict[str, Any] = {"messages": [], "params": {}, "response": None, "actions": None, "shadowed": None}
    for col in events_table.c:
        name = str(col.name)
        if name == "seq" or name in out:
            continue
        value = row.get(name)
        if isinstance(col.type, sa.String):
            value = None if value is None else str(value)[: col.type.length or None]
        elif isinstance(col.type, (sa.Float, sa.Integer)):
            value = value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
        out[name] = value
    out["ts"] = out["ts"] if out["ts"] is not None else 0.0
    for name in ("request_id", "account", "endpoint", "model"):
        out[name] = out[name] or ""
    out["error"] = f"event stored without its content: {error}"[:2000]
    return out


def iter_events(engine: sa.Engine, since: float | None = None, batch: int = 5000) -> Iterator[dict[str, Any]]:
    """Every stored event (the event record plus operational fields) in write order, streamed in batches."""
    last = 0
    cols = [events_table.c[n] for n in _COLUMNS]
    while True:
        q = sa.select(events_table.c.seq, *cols).where(events_table.c.seq > last)
        if since is not None:
            q = q.where(events_table.c.ts >= since)
        q = q.order_by(events_table.c.seq).limit(batch)
        with engine.connect() as conn:
            rows = conn.execute(q).all()
        if not rows:
            return
        for r in rows:
            yield {n: getattr(r, n) for n in _COLUMNS}
        last = rows[-1].seq


def count_events(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(events_table)).scalar_one())
