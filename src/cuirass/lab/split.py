"""Splitting generated traffic for an evaluation: a benign calibration half and a held-out test set.

Benign accounts are split in two halves, stratified by kind (so each half has its share of
app backends, students, teams...). The calibration file holds one half's events; the test file
holds the other half plus every attacker. Both keep event-time order. The same pass writes the
compact feeds the honeypotllm peer reads, and keeps each test account's request times (leakage).
"""

from __future__ import annotations

import dataclasses
import hashlib
from array import array
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from cuirass.lab.peers.honeypot import feed_line


@dataclasses.dataclass
class Split:
    calibration: Path
    test: Path
    calibration_feed: Path
    test_feed: Path
    calibration_accounts: set[str]
    test_times: dict[str, np.ndarray]  # account -> sorted request times, test accounts only
    calibration_events: int = 0
    test_events: int = 0


def benign_halves(labels: dict[str, Any], seed: int) -> tuple[set[str], set[str]]:
    """(calibration half, test half) of benign accounts, alternating within each kind by a keyed hash."""
    by_kind: dict[str, list[str]] = defaultdict(list)
    for account, info in labels["accounts"].items():
        if info["label"] == "benign":
            by_kind[info["kind"]].append(account)
    calib, test = set(), set()
    for kind in sorted(by_kind):
        ranked = sorted(by_kind[kind], key=lambda a: hashlib.sha256(f"{seed}:half:{a}".encode()).digest())
        calib.update(ranked[0::2])
        test.update(ranked[1::2])
    return calib, test


def split(traffic: Path, labels: dict[str, Any], out_dir: Path, seed: int, progress: bool = False) -> Split:
    """Write calibration.jsonl, test.jsonl and the two peer feeds into out_dir."""
    calib_accounts, _ = benign_halves(labels, seed)
    s = Split(
        out_dir / "calibration.jsonl",
        out_dir / "test.jsonl",
        out_dir / "calibration.feed.jsonl",
        out_dir / "test.feed.jsonl",
        calib_accounts,
        {},
    )
    times: dict[str, array[float]] = defaultdict(lambda: array("d"))
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(desc="split", unit="ev", unit_scale=True, total=labels.get("events"), mininterval=1.0)
    with (
        open(traffic, "rb") as src,
        open(s.calibration, "wb") as cal,
        open(s.test, "wb") as tst,
        open(s.calibration_feed, "wb") as cal_feed,
        open(s.test_feed, "wb") as tst_feed,
    ):
        for n, line in enumerate(src, 1):
            ev = orjson.loads(line)
            if ev["account"] in calib_accounts:
                cal.write(line)
                cal_feed.write(feed_line(ev))
                s.calibration_events += 1
            else:
                tst.write(line)
                tst_feed.write(feed_line(ev))
                times[ev["account"]].append(ev["ts"])
                s.test_events += 1
            if bar is not None and n % 8192 == 0:
                bar.update(8192)
    if bar is not None:
        bar.close()
    s.test_times = {a: np.frombuffer(ts, dtype=np.float64) for a, ts in times.items()}
    return s
