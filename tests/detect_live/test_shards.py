"""Issue 18, item 4: sharded online detection (`cuirass detect shard`) against a real NATS JetStream server, a
real PostgreSQL database and real shard processes.

The same lab traffic (150 benign people, a hydra and a stealth campaign, one day: ~2,000 events) is
published to the stream as a gateway would, and replayed by one process (detect/replay.py); the shards must
write the replay's verdicts for every account (flagged, score, reasons, campaign) and hold, in their
checkpoints, exactly the replay's request count per account: also when a shard is killed with SIGKILL
mid-stream and restarted (its partitions checkpointed several campaign jobs before, so the new owner applies
the stored jobs again as it re-reads their events), and when it is killed and not restarted.
"""

from __future__ import annotations

import json
import pickle
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cuirass.detect.engine import Detector
from tests.conftest import cuirass
from tests.detect_live import shard_fleet as F

INTERVAL_S = 3600.0  # campaign jobs every hour of event time: 24 jobs over the day
BAD = "bad-ts"  # an event no detector can score: set aside, as the replay skips it

pytestmark = pytest.mark.skipif(
    not (F.up(5432) and Path(F.NATS_SERVER).exists()), reason="needs PostgreSQL and nats-server"
)


@pytest.fixture(scope="module")
def events(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    rows = F.traffic(tmp_path_factory.mktemp("traffic") / "traffic.jsonl")
    middle = len(rows) // 2
    rows.insert(middle, {**rows[middle], "request_id": BAD, "ts": "yesterday"})
    return rows


@pytest.fixture(scope="module")
def replayed(events: list[dict[str, Any]]) -> Detector:
    return F.reference(events, INTERVAL_S)


@pytest.fixture
def bus(tmp_path: Path) -> Iterator[str]:
    """A nats-server of the test's own: every stream takes the subjects cuirass.events.>, so one per server."""
    with F.nats_server(tmp_path) as url:
        yield url


@pytest.fixture
def fleet(tmp_path: Path, bus: str, events: list[dict[str, Any]]) -> Iterator[F.Fleet]:
    with F.database() as db:
        stream = f"SHARDS_{uuid.uuid4().hex[:8].upper()}"
        F.publish(bus, stream, events)
        fleet = F.Fleet(tmp_path, db, bus, stream, INTERVAL_S)
        try:
            yield fleet
        finally:
            fleet.stop_all()


def _same_verdicts(fleet: F.Fleet, replayed: Detector) -> None:
    got, want = fleet.verdicts(), F.expected_verdicts(replayed)
    assert set(got) == set(want)
    for account, w in want.items():
        g = got[account]
        assert (g["flagged"], g["reasons"], g["campaign"]) == (w["flagged"], w["reasons"], w["campaign"]), account
        assert g["score"] == pytest.approx(w["score"], abs=1e-6), account


def _same_counts(fleet: F.Fleet, replayed: Detector) -> None:
    assert fleet.requests() == {a: s.n for a, s in replayed.scorer.accounts.items()}


def _wait_job(fleet: F.Fleet, job: int, timeout: float = 60) -> None:
    """Until the leader has finished campaign job `job` (the shards are mid-stream then)."""
    import sqlalchemy as sa

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with fleet.engine.connect() as conn:
            done = conn.execute(
                sa.text("SELECT max(id) FROM detect_jobs WHERE stream = :s AND phase = 'done'"), {"s": fleet.stream}
            ).scalar()
        if done is not None and done >= job:
            return
        time.sleep(0.1)
    raise AssertionError(f"job {job} not done within {timeout}s\n{fleet.logs()}")


def _status(fleet: F.Fleet, name: str) -> list[dict[str, Any]]:
    lines = (fleet.folder / f"{name}.out").read_text().splitlines()
    return [json.loads(x) for x in lines if x.startswith("{")]


def _shares(fleet: F.Fleet, *names: str, want: list[int], timeout: float = 20) -> list[int]:
    """The shards' partition counts (sorted) from their last status lines, polled until they are `want` or the
    deadline passes. Ownership settles a rebalance or two after the work is done, and the line read right after
    `wait_done` may predate the last hand-over."""
    deadline = time.monotonic() + timeout
    while True:
        lines = [_status(fleet, name) for name in names]
        got = sorted(len(x[-1]["partitions"]) for x in lines if x)
        if got == want or time.monotonic() > deadline:
            return got
        time.sleep(0.5)


def test_two_shards_give_the_replays_verdicts(fleet: F.Fleet, events: list[dict[str, Any]], replayed: Detector) -> None:
    assert any(s.campaign is not None for s in replayed.scorer), "the traffic must exercise campaign lifts"
    a, b = fleet.start("a"), fleet.start("b")
    fleet.wait_done(len(events), timeout=120)
    _same_verdicts(fleet, replayed)
    _same_counts(fleet, replayed)
    # The bad event was set aside, not fatal: both shards still run, and it is in the dead letters.
    assert a.poll() is None and b.poll() is None
    # (A partition that changes hands re-reads from its checkpoint, so the bad event may be set aside twice.)
    path = fleet.folder / "data" / "dead-letters" / "shard.jsonl"
    deadline = time.monotonic() + 10
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    letters = [json.loads(x) for x in path.read_text().splitlines()]
    assert {d["request_id"] for d in letters} == {BAD}
    # Each shard owns half the partitions, one leads, and lag is reported.
    assert _shares(fleet, "a", "b", want=[8, 8]) == [8, 8]
    last = [_status(fleet, "a")[-1], _status(fleet, "b")[-1]]
    assert sorted(s["leader"] for s in last) == [False, True]


def test_a_shard_killed_mid_stream_and_restarted_counts_every_event_once(
    fleet: F.Fleet, events: list[dict[str, Any]], replayed: Detector
) -> None:
    fleet.start("a")
    b = fleet.start("b", "--checkpoint-every", "600")  # it checkpoints only when it takes a partition
    _wait_job(fleet, 6)
    before = {r.partition: r.seq for r in fleet.partitions_table()}
    fleet.kill(b)
    # Its partitions' checkpoints are jobs behind their status: the new owner applies the stored jobs again.
    behind = [r for r in fleet.partitions_table() if pickle.loads(r.state)[0][1] <= r.job - 2]
    assert behind, "the test must restore partitions from checkpoints several jobs old"
    fleet.start("b2")
    fleet.wait_done(len(events), timeout=120)
    assert sum(before.values()) > 0 and max(before.values()) < len(events)  # it was killed mid-stream
    _same_counts(fleet, replayed)
    _same_verdicts(fleet, replayed)
    # The returning shard got its share back.
    assert _shares(fleet, "a", "b2", want=[8, 8]) == [8, 8]


def test_a_shard_killed_for_good_has_its_partitions_taken_over(
    fleet: F.Fleet, events: list[dict[str, Any]], replayed: Detector
) -> None:
    fleet.start("a")
    b = fleet.start("b")
    _wait_job(fleet, 6)
    fleet.kill(b)
    fleet.wait_done(len(events), timeout=120)
    assert _shares(fleet, "a", want=[16]) == [16]
    _same_counts(fleet, replayed)
    _same_verdicts(fleet, replayed)


def test_shards_refuse_sqlite(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(f"data_dir: {tmp_path / 'data'}\nevents:\n  bus: nats://127.0.0.1:4222\n")
    done = cuirass("detect", "shard", "--config", str(config), check=False)
    assert done.returncode != 0 and "PostgreSQL" in done.stderr
