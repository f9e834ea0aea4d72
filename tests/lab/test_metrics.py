"""Evaluation metrics on hand-checked numbers."""

from __future__ import annotations

import math

import numpy as np

from cuirass.lab import metrics


def test_auc_matches_pair_counting():
    pos, neg = [0.9, 0.8, 0.3, 0.5], [0.1, 0.3, 0.4]
    pairs = [(p > n) + 0.5 * (p == n) for p in pos for n in neg]
    assert math.isclose(metrics.roc_auc(pos, neg), sum(pairs) / len(pairs))
    assert metrics.roc_auc([1, 1], [0, 0]) == 1.0 and metrics.roc_auc([0], [1]) == 0.0
    assert math.isnan(metrics.roc_auc([], [1.0]))


def test_roc_curve_is_monotone_from_origin_to_corner():
    fpr, tpr = metrics.roc_curve([0.9, 0.7, 0.2], [0.1, 0.7, 0.3, 0.0])
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)


def test_recall_at_fpr_never_exceeds_the_fpr():
    rng = np.random.default_rng(0)
    neg, pos = rng.normal(0, 1, 5000), rng.normal(2, 1, 500)
    for f in (0.001, 0.01, 0.1):
        r = metrics.recall_at_fpr(pos, neg, f)
        assert r["fpr"] <= f and 0 < r["recall"] <= 1
    tied = metrics.recall_at_fpr([1.0, 1.0], [1.0] * 100, 0.001)
    assert tied["fpr"] == 0.0 and tied["recall"] == 0.0  # ties with benign cannot be flagged


def test_leakage_counts_requests_up_to_the_flag():
    times = {"a": np.array([1.0, 2.0, 3.0, 4.0]), "b": np.array([1.0, 5.0])}
    assert metrics.leakage(times, {"a": 2.0, "b": None}) == (2 + 2) / 6
    assert metrics.leakage(times, {"a": 0.5, "b": 0.5}) == 0.0
    _grid, share = metrics.leakage_curve(times, {"a": 2.0, "b": None}, points=5)
    assert share[0] == 1.0 and math.isclose(share[-1], 4 / 6)


def test_campaign_outcome_needs_the_catch_share():
    times = {f"a{i}": np.array([0.0, 10.0]) for i in range(10)}
    flagged = {f"a{i}": 0.0 for i in range(9)}
    out = metrics.campaign_outcome(list(times), flagged, times, 0.9)
    assert out["caught"] and math.isclose(out["flagged_share"], 0.9)
    assert not metrics.campaign_outcome(list(times), flagged, times, 0.95)["caught"]
