"""The event log in SQL: its table, the rows it stores, and `SqlEventLog`, the `EventLog` over it.

The table lives on the same SQL engine as the account store; no module outside `events/` (and the
schema list, `storage/schema.py`) names it: callers go through `cuirass.events.log.EventLog`.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import orjson
import sqlalchemy as sa

from cuirass.db import metadata
from cuirass.events.log import EVENT_LOGS, Row, Tailed
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


_JSON_COLUMNS = frozenset(str(c.name) for c in events_table.c if isinstance(c.type, sa.JSON))


def _insert_rows(conn: sa.Connection, rows: list[Row]) -> None:
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


def _absent_rows(conn: sa.Connection, rows: list[Row]) -> list[Row]:
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


def _decode(raw: dict[str, Any]) -> Row:
    return {k: orjson.loads(v) if k in _JSON_COLUMNS and v is not None else v for k, v in raw.items()}


@EVENT_LOGS.register
class SqlEventLog:
    """The event log in the `events` table of a SQL database (SQLite, PostgreSQL)."""

    name = "sql"

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def append(self, rows: list[Row], *, skip_present: bool = False) -> int:
        with self.engine.begin() as conn:
            todo = _absent_rows(conn, rows) if skip_present else rows
            if todo:
                _insert_rows(conn, todo)
        return len(todo)

    def missing(self, rows: list[Row]) -> list[Row]:
        with self.engine.connect() as conn:
            return _absent_rows(conn, rows)

    def read(self, since: float | None = None, batch: int = 5000) -> Iterator[Row]:
        last = 0
        cols = [events_table.c[n] for n in _COLUMNS]
        while True:
            q = sa.select(events_table.c.seq, *cols).where(events_table.c.seq > last)
            if since is not None:
                q = q.where(events_table.c.ts >= since)
            q = q.order_by(events_table.c.seq).limit(batch)
            with self.engine.connect() as conn:
                rows = conn.execute(q).all()
            if not rows:
                return
            for r in rows:
                yield {n: getattr(r, n) for n in _COLUMNS}
            last = rows[-1].seq

    def count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(events_table)).scalar_one())

    def start(self, since: float) -> int:
        q = sa.select(sa.func.min(events_table.c.seq)).where(events_table.c.ts >= since)
        with self.engine.connect() as conn:
            first = conn.execute(q).scalar()
            if first is None:
                first = (conn.execute(sa.select(sa.func.max(events_table.c.seq))).scalar() or 0) + 1
        return int(first) - 1

    def tail(self, after: int, limit: int) -> tuple[list[Tailed], int]:
        # JSON columns come as text and are decoded per event (`Tailed.row`), so that one undecodable
        # row is set aside alone instead of failing the whole batch, again and again, at the same seq.
        cols = [sa.cast(c, sa.Text).label(c.name) if c.name in _JSON_COLUMNS else c for c in events_table.c]
        q = sa.select(*cols).where(events_table.c.seq > after).order_by(events_table.c.seq).limit(limit)
        with self.engine.connect() as conn:
            rows = conn.execute(q).all()
        out = [
            Tailed(
                r.seq, r.account, r.request_id, functools.partial(_decode, {str(k): v for k, v in r._mapping.items()})
            )
            for r in rows
        ]
        return out, (out[-1].seq if out else after)

    def cohort_members(
        self, cohort: str | None, start: float | None, end: float | None
    ) -> list[tuple[str, str, float, float, int]]:
        ev = events_table.c
        q = (
            sa.select(ev.account, ev.cohort, sa.func.min(ev.ts), sa.func.max(ev.ts), sa.func.count())
            .where(ev.cohort.isnot(None))
            .group_by(ev.account, ev.cohort)
            .order_by(ev.cohort, ev.account)
        )
        if cohort is not None:
            q = q.where(ev.cohort == cohort)
        if start is not None:
            q = q.where(ev.ts >= start)
        if end is not None:
            q = q.where(ev.ts < end)
        with self.engine.connect() as conn:
            return [(a, c, float(lo), float(hi), int(n)) for a, c, lo, hi, n in conn.execute(q)]

    def cohort_moves(self, after: int = 0) -> list[dict[str, Any]]:
        # One pass with a window function over the keyed events (LAG per account).
        ev = events_table.c
        prev = sa.func.lag(ev.cohort).over(partition_by=ev.account, order_by=ev.seq).label("prev")
        sub = sa.select(ev.seq, ev.ts, ev.account, ev.cohort, prev).where(ev.cohort.isnot(None)).subquery()
        q = (
            sa.select(sub)
            .where(sub.c.seq > after)
            .where(
                sa.or_(
                    sa.and_(sub.c.prev.is_(None), sub.c.cohort.like("h%")),
                    sa.and_(sub.c.prev.isnot(None), sub.c.prev != sub.c.cohort),
                )
            )
            .order_by(sub.c.seq)
        )
        with self.engine.connect() as conn:
            return [
                {"seq": r.seq, "ts": r.ts, "account": r.account, "from": r.prev, "to": r.cohort}
                for r in conn.execute(q)
            ]

    def applied_actions(self, after: int) -> tuple[int, list[tuple[str | None, Any]]]:
        ev = events_table.c
        with self.engine.connect() as conn:
            through = conn.execute(sa.select(sa.func.max(ev.seq))).scalar() or after
            rows = conn.execute(sa.select(ev.cohort, ev.actions).where(ev.seq > after, ev.seq <= through)).all()
        return int(through), [(cohort, actions) for cohort, actions in rows]

    def keyed_messages(self, limit: int) -> list[Any]:
        ev = events_table.c
        q = (
            sa.select(ev.messages)
            .where(ev.cohort.isnot(None))
            .where(ev.status.is_(None) | (ev.status < 400))
            .order_by(ev.seq.desc())
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [msgs for (msgs,) in conn.execute(q)]

    def of_accounts(self, accounts: list[str], limit: int) -> list[Row]:
        cols = [events_table.c[n] for n in _COLUMNS]
        q = (
            sa.select(*cols)
            .where(events_table.c.account.in_(accounts))
            .order_by(events_table.c.ts.desc(), events_table.c.seq.desc())
            .limit(limit)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(q).all()
        return [{n: getattr(r, n) for n in _COLUMNS} for r in reversed(rows)]

    def activity(self, since: float) -> Iterator[tuple[float, str | None, Any, int | None]]:
        ev = events_table.c
        q = sa.select(ev.ts, ev.action, ev.shadowed, ev.status).where(ev.ts >= since)
        with self.engine.connect() as conn:
            for ts, action, shadowed, status in conn.execution_options(yield_per=5000).execute(q):
                yield float(ts), action, shadowed, status
