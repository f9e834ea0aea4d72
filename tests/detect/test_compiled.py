"""The compiled hot modules (cuirass.compiled): built, current, and judging exactly as their Python sources do."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import cuirass
from cuirass.compiled import MODULES, status
from cuirass.detect import checkpoint
from cuirass.detect.engine import Detector
from cuirass.detect.replay import replay_detector
from cuirass.detect.scoring import AccountState
from tests.detect import scenario

PURE = "compiled" not in status().values()  # CUIRASS_PURE, or no C compiler


def test_the_hot_modules_are_all_compiled_or_all_pure_and_none_is_stale() -> None:
    states = status()
    assert "stale" not in states.values(), f"run `make compile`: {states}"
    assert set(states.values()) in ({"compiled"}, {"pure"}), states
    assert sorted(states) == sorted(MODULES)
    if os.environ.get("CUIRASS_REQUIRE_COMPILED"):  # CI: the build must have compiled them
        assert set(states.values()) == {"compiled"}, states


@pytest.fixture(scope="module")
def pure_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the package without its extension modules: the Python sources alone."""
    root = tmp_path_factory.mktemp("pure")
    shutil.copytree(Path(cuirass.__file__).parent, root / "cuirass", ignore=shutil.ignore_patterns("*.so"))
    return root


def _detect(events: Path, out: Path, pythonpath: str | None) -> bytes:
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = pythonpath
    cmd = [sys.executable, "-m", "cuirass", "detect", "run", "--events", str(events), "--jobs", "0", "--out", str(out)]
    subprocess.run(cmd, env=env, check=True, capture_output=True, timeout=300)
    return out.read_bytes()


@pytest.mark.skipif(PURE, reason="nothing is compiled (CUIRASS_PURE, or no C compiler)")
def test_compiled_and_pure_give_the_same_report(pure_tree: Path, tmp_path: Path) -> None:
    events = scenario.benign(40, seed=5) + scenario.attackers(8, seed=6)
    log = scenario.as_jsonl(events, tmp_path / "events.jsonl")
    compiled = _detect(log, tmp_path / "compiled.json", None)
    pure = _detect(log, tmp_path / "pure.json", str(pure_tree))
    assert b'"flagged": true' in compiled  # the attackers are found, so the comparison covers verdicts too
    assert compiled == pure


@pytest.mark.skipif(PURE, reason="nothing is compiled (CUIRASS_PURE, or no C compiler)")
def test_a_checkpointed_account_restores_across_compiled_and_pure(pure_tree: Path) -> None:
    """A shard's checkpoint written by one build is read by the other (an upgrade, or CUIRASS_PURE)."""
    detector, _ = replay_detector(scenario.events_iter(scenario.attackers(2, seed=9)))
    state = next(iter(detector.scorer))
    assert isinstance(state, AccountState)
    blob = checkpoint.dump_account(detector, state.account)
    code = (
        "import sys\n"
        "from cuirass.detect import checkpoint\n"
        "from cuirass.detect.engine import Detector\n"
        "d = Detector()\n"
        "account, _ = checkpoint.load_account(d, sys.stdin.buffer.read())\n"
        "s = d.scorer.accounts[account]\n"
        "print(type(s).__module__, s.account, repr(s.own), repr(s.states[1].n))\n"
        "sys.stdout.flush()\n"
        "sys.stderr.buffer.write(checkpoint.dump_account(d, account))\n"
    )
    env = dict(os.environ, PYTHONPATH=str(pure_tree))
    done = subprocess.run(
        [sys.executable, "-c", code], input=blob, env=env, capture_output=True, check=True, timeout=60
    )
    expected = ["cuirass.detect.scoring", state.account, repr(state.own), repr(state.states[1].n)]
    assert done.stdout.decode().split() == expected
    fresh = Detector()
    account, _ = checkpoint.load_account(fresh, done.stderr)  # written by the pure sources, read compiled
    back = fresh.scorer.accounts[account]
    assert (back.account, back.own, back.evidence, back.n) == (state.account, state.own, state.evidence, state.n)
    assert back.states[5].__class__ is state.states[5].__class__
