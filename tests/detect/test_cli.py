"""`cuirass detect run|calibrate`: happy paths, and clear errors (never a traceback) on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from cuirass.cli import main
from tests.detect import scenario


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("logs")
    return {
        "benign": scenario.as_jsonl(scenario.benign(30, seed=31), d / "benign.jsonl"),
        "mixed": scenario.as_jsonl(scenario.benign(20, seed=32) + scenario.attackers(4, seed=33), d / "mixed.jsonl"),
    }


def invoke(*args: str):
    result = CliRunner().invoke(main, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def test_calibrate_then_run(logs: dict[str, Path], tmp_path: Path) -> None:
    cal = tmp_path / "calibration.json"
    r = invoke(
        "detect", "calibrate", "--benign", str(logs["benign"]), "--fpr", "0.05", "--out", str(cal), "--no-progress"
    )
    assert r.exit_code == 0, r.output
    assert json.loads(cal.read_text())["n_accounts"] == 30
    out = tmp_path / "report.json"
    r = invoke(
        "detect",
        "run",
        "--events",
        str(logs["mixed"]),
        "--out",
        str(out),
        "--calibration",
        str(cal),
        "--no-progress",
        "--json",
    )
    assert r.exit_code == 0, r.output
    summary = json.loads(r.output)
    report = json.loads(out.read_text())
    assert summary["events"] == sum(1 for _ in open(logs["mixed"]))  # noqa: SIM115
    assert {a["account"] for a in report["accounts"] if a["flagged"]} >= {f"harvest-33-{i}" for i in range(4)}


def test_presorted_streaming(logs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    r = invoke("detect", "run", "--events", str(logs["mixed"]), "--out", str(out), "--presorted", "--no-progress")
    assert r.exit_code == 0, r.output
    unsorted = tmp_path / "unsorted.jsonl"
    lines = logs["mixed"].read_bytes().splitlines(keepends=True)
    unsorted.write_bytes(b"".join(reversed(lines)))
    r = invoke("detect", "run", "--events", str(unsorted), "--out", str(out), "--presorted", "--no-progress")
    assert r.exit_code != 0 and "out of time order" in r.output


def test_help() -> None:
    for cmd in (("detect", "--help"), ("detect", "run", "--help"), ("detect", "calibrate", "--help")):
        assert invoke(*cmd).exit_code == 0


@pytest.mark.parametrize(
    "content, message",
    [
        (b'{"ts": 1, "account": "a"\n', "invalid JSON"),
        (b"[1, 2, 3]\n", "expected a JSON object"),
        (b'{"ts": 1, "account": "a"}\n', "not an event record"),
        (
            b'{"ts": "yesterday", "request_id": "r", "account": "a", "endpoint": "/v1/chat/completions", "model": "m", "messages": []}\n',
            "'ts' must be a number",
        ),
        (
            b'{"ts": 1, "request_id": "r", "account": "", "endpoint": "/v1/chat/completions", "model": "m", "messages": []}\n',
            "'account' must be",
        ),
        (
            b'{"ts": 1, "request_id": "r", "account": "a", "endpoint": "e", "model": "m", "messages": "hi"}\n',
            "'messages' must be a list",
        ),
    ],
)
def test_malformed_records(tmp_path: Path, content: bytes, message: str) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(content)
    for args in (
        ("detect", "run", "--events", str(bad), "--out", str(tmp_path / "r.json")),
        ("detect", "calibrate", "--benign", str(bad), "--out", str(tmp_path / "c.json")),
    ):
        r = invoke(*args, "--no-progress")
        assert r.exit_code != 0
        assert message in r.output and "bad.jsonl:1" in r.output and "Traceback" not in r.output


def test_missing_and_bad_files(logs: dict[str, Path], tmp_path: Path) -> None:
    r = invoke("detect", "run", "--events", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "r.json"))
    assert r.exit_code != 0 and "does not exist" in r.output
    cal = tmp_path / "cal.json"
    for content, message in (
        (b"{not json", "not valid JSON"),
        (b'{"threshold": "high"}', "threshold"),
        (b"[0.5]", "expected a JSON object"),
    ):
        cal.write_bytes(content)
        r = invoke(
            "detect",
            "run",
            "--events",
            str(logs["mixed"]),
            "--out",
            str(tmp_path / "r.json"),
            "--calibration",
            str(cal),
            "--no-progress",
        )
        assert r.exit_code != 0 and message in r.output
    r = invoke("detect", "calibrate", "--benign", str(logs["benign"]), "--fpr", "2", "--out", str(cal))
    assert r.exit_code != 0
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"\n")
    r = invoke("detect", "calibrate", "--benign", str(empty), "--out", str(cal), "--no-progress")
    assert r.exit_code != 0 and "no benign events" in r.output
    r = invoke(
        "detect",
        "run",
        "--events",
        str(logs["mixed"]),
        "--out",
        str(tmp_path / "no" / "dir" / "r.json"),
        "--no-progress",
    )
    assert r.exit_code != 0 and "cannot write" in r.output
