"""Online account scoring: bounded, decaying, explained, and separating harvesters from people."""

from __future__ import annotations

import dataclasses

import pytest

from cuirass.detect.digest import digest
from cuirass.detect.engine import Detector
from cuirass.detect.evidence import PRIOR, Combiner, rate_llr, sigmoid
from cuirass.detect.scoring import Scorer
from cuirass.detect.signals import build
from tests.detect import scenario


def test_rate_llr_is_signed_and_capped_in_volume() -> None:
    assert rate_llr(0, 10, 0.01) < 0 < rate_llr(5, 10, 0.01)
    assert rate_llr(50, 100, 0.01) == pytest.approx(
        rate_llr(500, 1000, 0.01), rel=0.02
    )  # beyond N_CAP only the rate matters


def test_group_censoring() -> None:
    combine = Combiner(["automation", "automation", None])
    assert combine([2.0, 2.0, 1.0]) == PRIOR + 2.5 + 1.0


def test_scores_are_probabilities_and_separate(benign_events: list, hydra_events: list) -> None:
    scorer = Scorer(build())
    for event in scenario.by_time(benign_events + hydra_events):
        scorer.observe(digest(event))
    people = [s.score for s in scorer if s.account.startswith("user")]
    harvesters = [s.score for s in scorer if s.account.startswith("harvest")]
    assert all(0.0 <= p <= 1.0 for p in people + harvesters)
    assert min(harvesters) > max(people)
    top = max(scorer, key=lambda s: s.score)
    assert any("reasoning" in r for r in scorer.reasons(top))


def test_evidence_decays_over_event_time(hydra_events: list) -> None:
    account = hydra_events[0].account
    mine = [e for e in hydra_events if e.account == account]
    scorer = Scorer(build(), tau_s=3600.0)
    for event in mine:
        scorer.observe(digest(event))
    hot = scorer.get(account).own
    later = dataclasses.replace(
        mine[-1], ts=mine[-1].ts + 30 * 86400, messages=[{"role": "user", "content": "thanks, bye"}]
    )
    scorer.observe(digest(later))
    assert scorer.get(account).own < hot


def test_unknown_account_verdict_is_clean() -> None:
    v = Detector().verdict("nobody")
    assert v.score == 0.0 and not v.flagged and v.first_flagged_ts is None


def test_sigmoid_is_stable() -> None:
    assert sigmoid(-1000) == 0.0 and sigmoid(1000) == 1.0 and abs(sigmoid(0) - 0.5) < 1e-12
