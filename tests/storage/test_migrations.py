"""Schema migrations on real SQLite and PostgreSQL databases: adopt a pre-migration database without losing a
row, build a fresh one, and let several processes upgrade the same database at once."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from cuirass.db import open_engine
from cuirass.events.store import events_table
from cuirass.storage import migrate, schema
from cuirass.storage.migrate import make_engine
from tests.conftest import cuirass, scratch_postgres

FIXTURES = Path(__file__).parent / "fixtures"
PG_BASE = "postgresql+psycopg://postgres@127.0.0.1:5432/"


def _postgres_up() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 5432), timeout=1).close()
    except OSError:
        return False
    return True


@contextlib.contextmanager
def _database(kind: str, folder: Path) -> Iterator[str]:
    """A new empty database of `kind` (a file under `folder`, or a throwaway PostgreSQL database)."""
    if kind == "sqlite":
        yield f"sqlite:///{folder / uuid.uuid4().hex[:8] / 'cuirass.db'}"
        return
    if not _postgres_up():
        pytest.skip("PostgreSQL is not running on 127.0.0.1:5432")
    with scratch_postgres("cuirass_mig") as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of each kind, dropped afterwards."""
    with _database(request.param, tmp_path) as u:
        yield u


def _run_sql(url: str, *files: str, skip: str = "") -> None:
    """Run the statements of fixture files in one transaction (statements end with ';' at a line's end)."""
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for name in files:
            text = "\n".join(
                line
                for line in (FIXTURES / name).read_text().splitlines()
                if not line.startswith("--") and not (skip and skip in line)
            )
            for statement in text.split(";\n"):
                if statement.strip():
                    conn.exec_driver_sql(statement)
    engine.dispose()


def _create_all_database(url: str) -> None:
    dialect = "sqlite" if url.startswith("sqlite") else "postgresql"
    _run_sql(url, f"create_all_{dialect}.sql", "rows.sql")


def _rows(url: str) -> dict[str, list[dict[str, Any]]]:
    """Every row of every table, read with a plain engine (no Cuirass code)."""
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        out = {
            name: [dict(r._mapping) for r in conn.exec_driver_sql(f'SELECT * FROM "{name}" ORDER BY 1')]
            for name in set(sa.inspect(conn).get_table_names()) - {"alembic_version"}
        }
    engine.dispose()
    return out


def _diff(engine: sa.Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(compare_metadata(MigrationContext.configure(conn), schema.target_metadata()))


def _shape(url: str) -> dict[str, Any]:
    """Tables as the database itself describes them: columns, keys and indexes."""
    engine = sa.create_engine(url)
    insp = sa.inspect(engine)
    out = {}
    for name in sorted(set(insp.get_table_names()) - {"alembic_version"}):
        out[name] = {
            "columns": [(c["name"], str(c["type"]), c["nullable"], c["default"]) for c in insp.get_columns(name)],
            "pk": insp.get_pk_constraint(name)["constrained_columns"],
            "fks": sorted(
                (tuple(f["constrained_columns"]), f["referred_table"], tuple(f["referred_columns"]))
                for f in insp.get_foreign_keys(name)
            ),
            "indexes": sorted((i["name"], tuple(i["column_names"]), bool(i["unique"])) for i in insp.get_indexes(name)),
        }
    engine.dispose()
    return out


def test_upgrade_keeps_every_row_of_a_create_all_database(url: str) -> None:
    _create_all_database(url)
    before = _rows(url)
    assert all(before.values()), "the fixture puts rows in every table"

    engine = make_engine(url)
    assert migrate.current(engine) == migrate.head()
    assert _diff(engine) == []
    after = _rows(url)
    for table, rows in before.items():  # later revisions may add columns; the old ones keep their values
        assert [{k: r[k] for k in rows[0]} for r in after[table]] == rows, table

    with engine.begin() as conn:  # autoincrement keys carry on after the adopted rows
        seq = conn.execute(
            events_table.insert().returning(events_table.c.seq),
            [
                {
                    "ts": 1.0,
                    "request_id": "req-new",
                    "account": "acct-a",
                    "endpoint": "/v1/completions",
                    "model": "principal",
                    "messages": [],
                    "params": {},
                }
            ],
        ).scalar_one()
    assert seq == max(r["seq"] for r in before["events"]) + 1
    engine.dispose()


def test_fresh_database_reaches_head_with_no_difference(url: str) -> None:
    engine = make_engine(url)
    assert migrate.current(engine) == migrate.head()
    assert migrate.status(engine)["up_to_date"]
    assert _diff(engine) == []
    assert {t.name for t in schema.TABLES} == set(schema.target_metadata().tables)
    engine.dispose()


def test_baseline_builds_exactly_the_create_all_schema(url: str, tmp_path: Path) -> None:
    """Revision 0001 on an empty database gives the same tables, keys and indexes as 0.1.0's create_all."""
    kind = url.split(":")[0].split("+")[0]
    with _database(kind, tmp_path) as legacy:
        _run_sql(legacy, f"create_all_{kind}.sql")
        expected = _shape(legacy)
    engine = sa.create_engine(url)
    if kind == "sqlite":
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    with engine.begin() as conn:
        command.upgrade(migrate.alembic_config(conn), "0001")
    engine.dispose()
    assert _shape(url) == expected


def test_a_database_that_differs_is_refused_and_left_alone(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cuirass.db'}"
    _run_sql(url, "create_all_sqlite.sql", skip="cohort VARCHAR(16)")  # an events table from before `cohort`
    shape = _shape(url)
    with pytest.raises(RuntimeError, match=r"differ from the 0.1.0 schema"):
        make_engine(url)
    assert _shape(url) == shape
    assert "alembic_version" not in sa.inspect(sa.create_engine(url)).get_table_names()


def test_a_database_from_a_newer_cuirass_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cuirass.db'}"
    make_engine(url).dispose()
    with sa.create_engine(url).begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
    with pytest.raises(RuntimeError, match="newer than this Cuirass knows"):
        make_engine(url)
    assert not migrate.status(open_engine(url))["known"]


_WORKER = """
import sys, time
from cuirass.storage.migrate import make_engine
while time.time() < float(sys.argv[2]):
    time.sleep(0.005)
make_engine(sys.argv[1]).dispose()
"""


@pytest.mark.parametrize("start", ["fresh", "create_all"])
def test_processes_starting_together_all_upgrade(url: str, start: str) -> None:
    if start == "create_all":
        _create_all_database(url)
    go = time.time() + 3  # every process is past its imports by then, so they all upgrade at once
    procs = [
        subprocess.Popen([sys.executable, "-c", _WORKER, url, str(go)], stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    errors = [p.communicate(timeout=60)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, errors
    engine = make_engine(url)
    assert migrate.current(engine) == migrate.head()
    assert _diff(engine) == []
    if start == "create_all":
        assert len(_rows(url)["events"]) == 2
    engine.dispose()


def test_db_commands_show_and_run_the_upgrade(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _create_all_database(f"sqlite:///{data / 'cuirass.db'}")

    def run(*args: str) -> dict[str, Any]:
        out: dict[str, Any] = json.loads(cuirass("db", *args, "--data-dir", str(data), "--json").stdout)
        return out

    before = run("current")
    assert before["current"] is None and before["pending"][0] == "0001" and not before["up_to_date"]
    done = run("upgrade")
    assert done["from"] is None and done["applied"] == before["pending"] and done["current"] == done["head"]
    assert run("current")["up_to_date"]
    assert "newest schema" in cuirass("db", "upgrade", "--help").stdout
