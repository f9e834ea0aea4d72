"""The adaptive attacker: it reads the reasons, changes the right knob, and every round is measured."""

from __future__ import annotations

import dataclasses

import pytest

from cuirass.lab import adapt
from cuirass.lab.traffic import PRESETS, TrafficConfig

pytest.importorskip("cuirass.detect.replay", reason="detection engine not built yet")

HYDRA = PRESETS["hydra"]


def test_a_reason_about_timing_makes_it_slow_down():
    calls = adapt.moves_for({"a": ["regular pacing (gap CV 0.05) [+2.0]"], "b": ["active around the clock"]})
    assert calls["slow down"] == 1.0 and calls["rephrase"] == 0.0
    spec, made = adapt.adapt(HYDRA, calls, 1, days=4.0)
    assert "slow down" in made and "rephrase" not in made
    assert spec.timing == "human" and spec.rate_per_day < HYDRA.rate_per_day
    assert spec.wording_seed == HYDRA.wording_seed and spec.phrasing == HYDRA.phrasing


def test_a_reason_about_templates_makes_it_rephrase():
    calls = adapt.moves_for({"a": ["reuses a prompt template in 90% of 40 recent prompts [+3.0]"]})
    spec, made = adapt.adapt(HYDRA, calls, 1, days=4.0)
    assert "rephrase" in made and "slow down" not in made
    assert spec.phrasing == "heldout" and spec.wording_seed != HYDRA.wording_seed and spec.paraphrase == 2
    assert spec.timing == HYDRA.timing and spec.rate_per_day == HYDRA.rate_per_day


def test_a_reason_about_shared_infrastructure_brings_fresh_infrastructure():
    calls = adapt.moves_for({"a": ["member of campaign c-1: 7 linked accounts judged together [+4.0]"]})
    spec, made = adapt.adapt(HYDRA, calls, 1, days=4.0)
    assert "fresh infrastructure" in made
    assert spec.shared_infra == 0 and spec.creation_burst == 0 and spec.addresses == "home"
    assert spec.requests and spec.requests < HYDRA.rate_per_day * 4  # and fewer requests per account


def test_unseen_it_gets_greedier():
    spec, made = adapt.adapt(HYDRA, adapt.moves_for({}), 1, days=4.0, recall=0.0)
    assert made == ["more requests per account"] and spec.requests > HYDRA.rate_per_day * 4


def test_two_small_rounds_measure_each_round_and_the_strategy_follows_the_reasons(tmp_path):
    world = TrafficConfig(seed=3, benign_accounts=60, days=2.0, campaigns=())
    start = dataclasses.replace(HYDRA, accounts=12)
    results = adapt.run(adapt.AdaptConfig(world, start, rounds=2), tmp_path, progress=False)
    first, second = results["rounds"]
    for row in (first, second):
        for key in ("recall", "leakage", "benign_fpr", "harvested", "harvest_sent", "accounts", "per_1k_answers"):
            assert key in row, key
        assert set(row["per_1k_answers"]) == {"accounts", "cards", "addresses", "days"}
        assert 0 <= row["recall"] <= 1 and 0 <= row["leakage"] <= 1 and 0 <= row["benign_fpr"] <= 1
        assert row["harvested"] <= row["harvest_sent"]
    assert first["recall"] > 0.5  # the loud starting campaign is caught ...
    called = {m for m, share in first["reason_shares"].items() if share >= adapt.ACT_ON}
    assert called and set(second["moves"]) == called  # ... and round 2 makes exactly the moves its reasons called for
    assert second["strategy"] != first["strategy"]
    for name in ("adapt.json", "adapt.md", "adapt.png"):
        assert (tmp_path / name).stat().st_size > 0
    assert "| round | moves |" in (tmp_path / "adapt.md").read_text()


def test_cli_adaptive_prints_the_round_table(tmp_path):
    from click.testing import CliRunner

    from cuirass.cli import main

    args = ["lab", "detect", "--quick", "--adaptive", "1", "--benign-accounts", "40", "--days", "1"]
    args += ["--campaign", "hydra:8", "--out", str(tmp_path), "--no-progress"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    assert "| round | moves |" in res.output and (tmp_path / "adapt.json").exists()
    two = CliRunner().invoke(main, [*args, "--campaign", "thin:5"])
    assert two.exit_code != 0 and "one campaign" in two.output
