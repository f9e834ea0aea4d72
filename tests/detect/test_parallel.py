"""`cuirass detect run|calibrate --jobs N`: several processes digest the log, and the report (or the
calibration) is the one a single process gives, whatever the log holds (out of order, malformed lines, a
foreign format)."""

from __future__ import annotations

import contextlib
import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from cuirass.cli import main
from cuirass.detect import parallel
from cuirass.events.formats import Reading
from tests.detect import foreign_logs, scenario


@pytest.fixture(autouse=True)
def small_spans(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parallel, "SPAN_BYTES", 16 << 10)  # a few dozen events per span: many spans


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    events = scenario.benign(40, seed=41) + scenario.attackers(6, seed=42, per_day=60)
    return scenario.as_jsonl(events, tmp_path_factory.mktemp("logs") / "mixed.jsonl")


def report(*args: str) -> tuple[dict, str]:
    result = CliRunner().invoke(main, ["detect", "run", "--no-progress", *args])
    assert result.exit_code == 0, result.output
    out = Path(args[args.index("--out") + 1])
    return json.loads(out.read_bytes()), result.output


def test_processes_digest_every_event_as_one_process_does(log: Path) -> None:
    alone, pooled = Reading("cuirass"), Reading("cuirass")
    one = [scenario.fields(d) for d in parallel.digest_log(log, alone, jobs=0, strict=True)]
    many = [scenario.fields(d) for d in parallel.digest_log(log, pooled, jobs=2, strict=True)]
    assert len(one) > 1000 and log.stat().st_size > 20 * parallel.SPAN_BYTES
    assert many == one
    assert pooled == alone


def test_the_report_is_the_same_in_order_out_of_order_and_streamed(log: Path, tmp_path: Path) -> None:
    base, _ = report("--events", str(log), "--out", str(tmp_path / "one.json"), "--jobs", "0")
    assert base["summary"]["flagged"] > 0
    assert report("--events", str(log), "--out", str(tmp_path / "two.json"), "--jobs", "2")[0] == base
    assert report("--events", str(log), "--out", str(tmp_path / "three.json"), "--jobs", "1")[0] == base
    assert report("--events", str(log), "--out", str(tmp_path / "s.json"), "--jobs", "2", "--presorted")[0] == base
    # Out of order late in the log: the scores made while reading are dropped and the sorted log is scored.
    lines = log.read_bytes().splitlines(keepends=True)
    late = len(lines) * 9 // 10
    lines[late], lines[late + 40] = lines[late + 40], lines[late]
    shuffled = tmp_path / "shuffled.jsonl"
    shuffled.write_bytes(b"".join(lines))
    assert report("--events", str(shuffled), "--out", str(tmp_path / "x.json"), "--jobs", "2")[0] == base


def test_a_malformed_line_is_named_by_its_line_number(log: Path, tmp_path: Path) -> None:
    lines = log.read_bytes().splitlines(keepends=True)
    at = len(lines) * 2 // 3
    lines.insert(at, b'{"ts": 1, "request_id": "r", "account": "", "endpoint": "e", "model": "m", "messages": []}\n')
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b"".join(lines))
    outputs = []
    for jobs in ("0", "2"):
        result = CliRunner().invoke(
            main,
            ["detect", "run", "--events", str(bad), "--out", str(tmp_path / "r.json"), "--no-progress", "--jobs", jobs],
        )
        assert result.exit_code != 0 and "Traceback" not in result.output
        assert f"bad.jsonl:{at + 1}: 'account' must be" in result.output
        outputs.append(result.output)
    assert outputs[0] == outputs[1]


def test_a_foreign_log_with_bad_records_reads_the_same(log: Path, tmp_path: Path) -> None:
    events = [orjson.loads(line) for line in log.read_bytes().splitlines()]
    foreign = foreign_logs.to_openai_jsonl(events, tmp_path / "openai.jsonl")
    lines = foreign.read_bytes().splitlines(keepends=True)
    rng = random.Random(5)
    for at in sorted(rng.sample(range(len(lines)), 14), reverse=True):
        lines.insert(at, b"{not json\n" if at % 2 else b"[1, 2]\n")
    foreign.write_bytes(b"".join(lines))
    runs = [
        report("--events", str(foreign), "--format", "openai-jsonl", "--out", str(tmp_path / f"{j}.json"), "--jobs", j)
        for j in ("0", "2")
    ]
    (one, said_one), (two, said_two) = runs
    assert one == two and one["summary"]["malformed"] == 14
    assert said_one.count("skipped a malformed record") == said_two.count("skipped a malformed record") == 10


def test_calibration_is_the_same_with_processes(tmp_path: Path) -> None:
    benign = scenario.as_jsonl(scenario.benign(60, seed=43), tmp_path / "benign.jsonl")
    out = []
    for jobs in ("0", "2"):
        path = tmp_path / f"cal{jobs}.json"
        args = ["detect", "calibrate", "--benign", str(benign), "--fpr", "0.05", "--out", str(path), "--jobs", jobs]
        result = CliRunner().invoke(main, [*args, "--no-progress"])
        assert result.exit_code == 0, result.output
        out.append(json.loads(path.read_bytes()))
    assert out[0] == out[1] and out[0]["n_accounts"] == 60


def _stat(pid: int | str) -> list[str]:
    """A process's /proc/PID/stat fields after its name: field 3 of proc(5) first."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _descendants(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(_stat(entry)[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, todo = set(), [root]
    while todo:
        for child in children.get(todo.pop(), []):
            out.add(child)
            todo.append(child)
    return out


def _nice(pid: int) -> int:
    return int(_stat(pid)[16])  # field 19 of proc(5)


@contextlib.contextmanager
def _slow_replay(log: Path) -> Iterator[tuple[subprocess.Popen[str], set[int]]]:
    """A replay that scores slowly, so that its digesting processes wait for work: (its process, the processes
    it started); killed with -9 on the way out (no clean-up runs in it)."""
    script = (
        "import sys, time\n"
        "from cuirass.detect import parallel\n"
        "from cuirass.events.formats import Reading\n"
        "parallel.SPAN_BYTES = 16 << 10\n"
        "for d in parallel.digest_log(sys.argv[1], Reading('cuirass'), jobs=2):\n"
        "    print('digest', flush=True)\n"
        "    time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script, str(log)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "digest\n"
        helpers = _descendants(proc.pid)
        assert helpers  # the pool's processes (and the forkserver)
        yield proc, helpers
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process tree from /proc")
def test_digesting_processes_end_when_the_replay_is_killed(log: Path) -> None:
    with _slow_replay(log) as (_, helpers):
        pass
    deadline = time.monotonic() + 10 * parallel.WATCH_S + 5
    while time.monotonic() < deadline and any(Path(f"/proc/{pid}").exists() for pid in helpers):
        time.sleep(0.2)
    left = [pid for pid in helpers if Path(f"/proc/{pid}").exists()]
    assert not left, f"processes left behind: {left}"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process tree from /proc")
def test_digesting_processes_yield_the_cores_to_the_scoring_process(log: Path) -> None:
    with _slow_replay(log) as (proc, _):
        scoring = _nice(proc.pid)
        deadline = time.monotonic() + 10
        while True:  # the pool starts its processes as work arrives
            helpers = _descendants(proc.pid)
            digesting = [pid for pid in helpers if _nice(pid) > scoring]
            if len(digesting) >= 2 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        # Two digesting processes, each at the lower priority (the pool's forkserver, which only starts them,
        # keeps the scoring process's).
        assert len(digesting) == 2 and {_nice(pid) for pid in digesting} == {min(19, scoring + parallel.NICE)}


def test_without_process_pools_the_scoring_process_digests(log: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_pools(*args: object, **kwargs: object) -> None:
        raise OSError(38, "Function not implemented")  # what a container without /dev/shm answers

    alone = [scenario.fields(d) for d in parallel.digest_log(log, Reading("cuirass"), jobs=0)]
    monkeypatch.setattr(parallel, "ProcessPoolExecutor", no_pools)
    assert [scenario.fields(d) for d in parallel.digest_log(log, Reading("cuirass"), jobs=2)] == alone
