"""Calibration: the threshold keeps benign accounts flagged at or under the requested rate."""

from __future__ import annotations

import math

import pytest

from cuirass.detect.calibrate import calibrate, conformal_threshold
from cuirass.detect.replay import replay
from tests.detect import scenario


def test_conformal_quantile_and_ties() -> None:
    scores = [i / 100 for i in range(100)]  # 0.00 .. 0.99
    t, ok = conformal_threshold(scores, 0.05)
    assert ok and sum(s >= t for s in scores) <= 5
    tied = [0.5] * 50 + [0.9] * 50
    t, ok = conformal_threshold(tied, 0.1)
    assert t > 0.9 and sum(s >= t for s in tied) == 0  # ties at the quantile are never flagged
    t, ok = conformal_threshold([0.3, 0.7], 0.001)
    assert not ok and t > 0.7
    with pytest.raises(ValueError):
        conformal_threshold([], 0.1)
    with pytest.raises(ValueError):
        conformal_threshold([0.1], 0.0)


def test_calibration_honours_its_fpr_on_held_out_benign() -> None:
    fpr = 0.05
    calibration = calibrate(scenario.by_time(scenario.benign(120, seed=21, prefix="a")), fpr=fpr)
    assert calibration["version"] == 1 and calibration["n_accounts"] == 120 and calibration["fpr"] == fpr
    assert 0.0 < calibration["threshold"] <= 1.0 + 1e-9
    held_out = replay(scenario.by_time(scenario.benign(120, seed=22, prefix="b")), calibration=calibration)
    flagged = sum(r["flagged"] for r in held_out["accounts"])
    assert flagged <= math.ceil(fpr * len(held_out["accounts"]))
    attack = replay(scenario.by_time(scenario.attackers(5, seed=23)), calibration=calibration)
    assert all(r["flagged"] for r in attack["accounts"])


def test_calibration_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        calibrate([], fpr=0.01)
    with pytest.raises(ValueError):
        calibrate(scenario.benign(2, seed=1), fpr=1.5)
