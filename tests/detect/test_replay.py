"""Offline replay: the DESIGN report, deterministic, causal."""

from __future__ import annotations

import random

from cuirass.detect.replay import replay
from tests.detect import scenario

CAL = {"threshold": 0.9}


def test_report_shape(mixed_events: list) -> None:
    report = replay(mixed_events, calibration=CAL)
    assert set(report) >= {"accounts", "campaigns"}
    row = report["accounts"][0]
    assert set(row) >= {"account", "score", "flagged", "first_flagged_ts", "campaign", "reasons"}
    assert len(report["accounts"]) == len(scenario.accounts_of(mixed_events))
    harvesters = [r for r in report["accounts"] if r["account"].startswith("harvest")]
    assert all(r["flagged"] and r["reasons"] for r in harvesters)
    for c in report["campaigns"]:
        assert set(c) >= {"id", "accounts", "score", "reasons"}


def test_deterministic_and_order_independent(mixed_events: list) -> None:
    shuffled = list(mixed_events)
    random.Random(0).shuffle(shuffled)
    assert replay(mixed_events, calibration=CAL) == replay(shuffled, calibration=CAL)


def test_causal_appending_future_events_changes_no_earlier_verdict(mixed_events: list) -> None:
    cut = mixed_events[len(mixed_events) // 2].ts
    past = [e for e in mixed_events if e.ts <= cut]
    future = scenario.by_time(
        scenario.attackers(6, seed=11, start_day=2.5, prefix="late") + [e for e in mixed_events if e.ts > cut]
    )
    before = {r["account"]: r for r in replay(past, calibration=CAL)["accounts"]}
    after = {r["account"]: r for r in replay(past + future, calibration=CAL)["accounts"]}
    flagged_before = [a for a, r in before.items() if r["flagged"]]
    assert flagged_before
    for account in flagged_before:
        assert after[account]["first_flagged_ts"] == before[account]["first_flagged_ts"] <= cut
    for account, r in after.items():
        if r["first_flagged_ts"] is not None and r["first_flagged_ts"] <= cut:
            assert before[account]["first_flagged_ts"] == r["first_flagged_ts"]


def test_presorted_streaming_matches_buffered(mixed_events: list) -> None:
    assert replay(iter(mixed_events), calibration=CAL, presorted=True) == replay(mixed_events, calibration=CAL)
