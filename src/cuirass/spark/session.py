"""Starting Spark for a history run, and turning its failures into one readable line.

PySpark is an extra (`pip install 'cuirass[spark]'`) and needs a Java runtime; both are checked
before anything starts, so a missing piece reads as a sentence, not a JVM stack trace.

The Python workers must import this same `cuirass`: in local mode they are children of this
interpreter and get its PYTHONPATH (plus the folder this package was loaded from) through
`spark.executorEnv.PYTHONPATH`. On a cluster, every worker needs `cuirass[spark]` installed at
the driver's version (docs/fleet.md, "History on Spark").
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import cuirass


class HistoryError(Exception):
    """A history run could not start or read its input; the message says why in one line."""


def require_pyspark() -> None:
    try:
        import pyspark  # noqa: F401
    except ImportError:
        raise HistoryError("the Spark engine needs PySpark, an optional extra: pip install 'cuirass[spark]'") from None


def require_java() -> None:
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").exists():
        return
    if shutil.which("java") is None:
        raise HistoryError(
            "the Spark engine needs a Java runtime (17 or 21): none on PATH and JAVA_HOME is not set "
            "(e.g. apt-get install openjdk-17-jre-headless)"
        )


def start(master: str, conf: Mapping[str, str] | None = None) -> tuple[Any, bool]:
    """(SparkSession, whether this call created it). An active session (a test's, a notebook's) is reused."""
    require_pyspark()
    from pyspark.sql import SparkSession

    # Arrow batches are all this package hands Spark; its note about pandas versions is noise here.
    warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas", category=FutureWarning)

    active = SparkSession.getActiveSession()
    if active is not None:
        return active, False
    require_java()
    package_root = str(Path(cuirass.__file__).resolve().parent.parent)
    paths = [package_root, *os.environ.get("PYTHONPATH", "").split(os.pathsep)]
    python_path = os.pathsep.join(dict.fromkeys(p for p in paths if p))
    builder = (
        SparkSession.builder.master(master)
        .appName("cuirass-history")
        .config("spark.executorEnv.PYTHONPATH", python_path)
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", "4096")
        .config("spark.ui.showConsoleProgress", "false")
    )
    if master.startswith("local"):
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # workers run this interpreter (its venv)
        os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    for key, value in (conf or {}).items():
        builder = builder.config(key, value)
    try:
        session = builder.getOrCreate()
    except Exception as exc:  # noqa: BLE001 - the JVM's reasons vary; all of them end the run
        raise HistoryError(f"cannot start Spark at {master}: {short(exc)}") from None
    session.sparkContext.setLogLevel("ERROR")
    return session, True


def short(exc: BaseException) -> str:
    """The gist of a Spark or Py4J error, without the stack trace: the deepest JVM cause ("Caused by:"),
    else for an error raised in a Python worker its last line, else the first line."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    causes = [line.removeprefix("Caused by: ") for line in lines if line.startswith("Caused by:")]
    if causes:
        return causes[-1][:500]
    if isinstance(exc, _python_errors()):
        return lines[-1][:500]
    return lines[0][:500]


def _python_errors() -> tuple[type[BaseException], ...]:
    with contextlib.suppress(ImportError):
        from pyspark.errors import PythonException

        return (PythonException,)
    return ()


@contextlib.contextmanager
def readable_errors(what: str) -> Iterator[None]:
    """Re-raise what Spark raises inside as a HistoryError naming `what` was being done."""
    try:
        yield
    except HistoryError:
        raise
    except Exception as exc:  # Py4J, Spark analysis and worker errors alike become one line
        if type(exc).__module__.startswith(("pyspark", "py4j")):
            raise HistoryError(f"{what}: {short(exc)}") from None
        raise
