"""`cuirass detect run --engine spark` gives the single-process replay's report (real Spark, local[2]).

Lab traffic (benign accounts, a hydra and a rubric campaign) is replayed by `--engine local` and
by Spark from JSON lines and from a Parquet archive; the reports must match, campaigns,
signature attachments and first_flagged_ts included.
"""

from __future__ import annotations

import math
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

pytest.importorskip("pyspark")

from cuirass.cli import main
from cuirass.detect.engine import Detector
from cuirass.detect.replay import replay
from cuirass.events.record import read_jsonl
from cuirass.lab.traffic import TrafficConfig, generate, parse_campaign
from cuirass.spark import history, session, source
from cuirass.spark.schedule import job_times
from tests.spark.parquet import write_archive

pytestmark = pytest.mark.heavy  # Spark jobs on a local JVM


@pytest.fixture(scope="module")
def spark() -> Any:
    spark, created = session.start(
        "local[2]",
        {"spark.ui.enabled": "false", "spark.sql.shuffle.partitions": "4", "spark.driver.memory": "1g"},
    )
    yield spark
    if created:
        spark.stop()


@pytest.fixture(scope="module")
def traffic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("traffic") / "events.jsonl"
    campaigns = (parse_campaign("hydra:30"), parse_campaign("rubric:20"))
    generate(TrafficConfig(seed=3, benign_accounts=100, campaigns=campaigns, days=3.0), out)
    return out


@pytest.fixture(scope="module")
def local_report(traffic: Path) -> dict[str, Any]:
    return replay(read_jsonl(traffic))


def assert_same(spark_report: dict[str, Any], local: dict[str, Any]) -> None:
    """Equal reports: every account's fields (scores to 1e-9), campaigns and summary."""
    assert spark_report["summary"] == local["summary"]
    assert spark_report["threshold"] == local["threshold"]
    assert [a["account"] for a in spark_report["accounts"]] == [a["account"] for a in local["accounts"]]
    for got, want in zip(spark_report["accounts"], local["accounts"]):
        for name in ("score", "score_now"):
            assert math.isclose(got[name], want[name], rel_tol=0, abs_tol=1e-9), (got, want)
        for name in ("flagged", "first_flagged_ts", "campaign", "reasons", "requests"):
            assert got[name] == want[name], (name, got, want)
    assert spark_report["campaigns"] == local["campaigns"]


def test_jsonl_through_the_cli_gives_the_local_report(
    traffic: Path, local_report: dict[str, Any], spark: Any, tmp_path: Path
) -> None:
    # The data exercises what makes history hard: campaigns, and accounts attached between jobs by signature.
    assert local_report["summary"]["campaigns"] >= 2 and local_report["summary"]["flagged"] >= 40
    assert any("signature" in r for a in local_report["accounts"] for r in a["reasons"][:1])
    outputs = {}
    for engine in ("local", "spark"):
        out = tmp_path / f"{engine}.json"
        r = CliRunner().invoke(
            main,
            [
                "detect",
                "run",
                "--engine",
                engine,
                "--master",
                "local[2]",
                "--events",
                str(traffic),
                "--out",
                str(out),
                "--no-progress",
            ],
        )
        assert r.exit_code == 0, r.output
        outputs[engine] = [line for line in r.output.splitlines() if not line.startswith("replayed ")]
        assert f"replayed {local_report['summary']['events']:,} events" in r.output
    assert_same(
        orjson.loads((tmp_path / "spark.json").read_bytes()), orjson.loads((tmp_path / "local.json").read_bytes())
    )
    assert outputs["spark"] == [line.replace("local.json", "spark.json") for line in outputs["local"]]


def test_parquet_archive_gives_the_local_report(
    traffic: Path, local_report: dict[str, Any], spark: Any, tmp_path: Path
) -> None:
    files = write_archive(read_jsonl(traffic), tmp_path / "archive")
    assert len(files) >= 3  # several days, so several files read in path order
    paths, fmt = source.resolve(str(tmp_path / "archive" / "day=*" / "*.parquet"))
    assert fmt == "parquet" and len(paths) == len(files)
    result = history.run(spark, paths, fmt, partitions=3)
    assert_same(result.report, local_report)


def test_malformed_records_are_skipped_and_counted(
    traffic: Path, local_report: dict[str, Any], spark: Any, tmp_path: Path
) -> None:
    lines = traffic.read_bytes().splitlines()
    bad = [
        b"{not json",
        b'{"ts": "yesterday", "request_id": "r1", "account": "x", "endpoint": "/v1/chat/completions", "model": "m", "messages": []}',
        b"[1, 2]",
        b'{"ts": 1.0}',
    ]
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_bytes(b"\n".join([*lines[:100], *bad, *lines[100:], b""]))
    result = history.run(spark, *source.resolve(str(mixed)))
    assert result.report["summary"].pop("skipped") == len(bad)
    assert len(result.skipped_samples) == len(bad) and all("mixed.jsonl" in s for s in result.skipped_samples)
    assert_same(result.report, local_report)


def test_bad_input_is_one_clear_line(spark: Any, tmp_path: Path) -> None:
    def run(events: str) -> str:
        r = CliRunner().invoke(
            main,
            [
                "detect",
                "run",
                "--engine",
                "spark",
                "--events",
                events,
                "--out",
                str(tmp_path / "r.json"),
                "--no-progress",
            ],
        )
        assert r.exit_code == 1
        assert "Traceback" not in r.output and "\tat " not in r.output and len(r.output.splitlines()) == 1, r.output
        return r.output

    assert "no files match" in run(str(tmp_path / "nowhere" / "*.parquet"))
    (tmp_path / "odd.txt").write_text("x")
    assert "--format" in run(str(tmp_path / "odd.txt"))
    (tmp_path / "broken.parquet").write_bytes(b"this is not parquet")
    out = run(str(tmp_path / "broken.parquet"))
    assert "reading the events" in out and "broken.parquet" in out


@pytest.mark.parametrize(
    "env, message",
    [
        ({"PYTHONSTARTUP": ""}, "pip install 'cuirass[spark]'"),
        ({"JAVA_HOME": "", "PATH": "/nonexistent"}, "Java runtime"),
    ],
)
def test_missing_pyspark_or_java_is_explained(env: dict[str, str], message: str, tmp_path: Path) -> None:
    events = tmp_path / "e.jsonl"
    events.write_text("")
    hide = "import sys; sys.modules['pyspark'] = None; " if "pip" in message else ""
    code = hide + "from cuirass.cli import main; main()"
    r = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            "detect",
            "run",
            "--engine",
            "spark",
            "--events",
            str(events),
            "--out",
            str(tmp_path / "r.json"),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=60,
    )
    assert r.returncode == 1 and message in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_job_schedule_is_the_detectors() -> None:
    rng = random.Random(7)
    interval = 3600.0
    ts = sorted(round(rng.uniform(0, 40 * interval) + 1.7e9, 1) for _ in range(400))
    ts += [1.7e9 + 60 * interval + 0.0, 1.7e9 + 61 * interval]  # a gap, and events exactly on grid points
    detector = Detector(campaign_interval_s=interval)
    expected = [t for t in ts if detector.maybe_run_campaigns(t)]
    cells: dict[int, float] = {}
    for t in ts:
        cells[math.floor(t / interval)] = min(cells.get(math.floor(t / interval), t), t)
    assert job_times(cells.values(), interval) == expected and len(expected) > 30
