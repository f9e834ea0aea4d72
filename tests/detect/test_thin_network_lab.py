"""A thin network on the lab's traffic, at a small size, through the lab's own path (generate, split, calibrate on
benign half A at 0.1% FPR, replay the rest causally): what an operator would see."""

from __future__ import annotations

from collections import Counter

import pytest

from cuirass.lab import detect_eval
from cuirass.lab.split import split
from cuirass.lab.traffic import TrafficConfig, generate
from cuirass.lab.traffic.campaigns import parse_campaign

# 300 accounts, about ten requests each over the last two weeks, 30% real chat as cover, each on its own address,
# agent and card, its reasoning instruction paraphrased per request (run A of BENCHMARKS "Detection: thin networks").
THIN = (
    "stealth:300:rate_per_day=1,cot_fraction=0.6,benign_mix=0.3,paraphrase=2,shared_infra=0,timing=human,"
    "pivot=false,start=0.1,ramp=0.3"
)


@pytest.fixture(scope="module")
def outcome(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, str], Counter[str], Counter[str], dict]:
    out = tmp_path_factory.mktemp("thin-lab")
    config = TrafficConfig(seed=0, benign_accounts=300, days=14.0, hard_negatives=60, campaigns=(parse_campaign(THIN),))
    labels = generate(config, out / "traffic.jsonl")
    halves = split(out / "traffic.jsonl", labels, out, config.seed)
    verdicts, _, _ = detect_eval.run_cuirass(halves, 0.001, out)
    kinds = {a: labels["accounts"][a]["kind"] for a in halves.test_times}
    accounts, flagged = Counter(kinds.values()), Counter(k for a, k in kinds.items() if verdicts.flagged_at.get(a))
    return kinds, accounts, flagged, verdicts.reasons


def test_a_thin_network_is_flagged_as_a_network(outcome) -> None:
    """Alone its accounts are unremarkable; a good share of them is flagged, and as members of a campaign."""
    kinds, accounts, flagged, reasons = outcome
    assert accounts["stealth"] >= 200
    assert flagged["stealth"] >= 0.4 * accounts["stealth"], (flagged, accounts)
    members = [a for a, k in kinds.items() if k == "stealth" and any("campaign" in r for r in reasons.get(a, []))]
    assert len(members) >= 0.3 * accounts["stealth"]


def test_people_and_hard_negatives_are_not_flagged(outcome) -> None:
    """Ordinary users, teams behind one corporate NAT and card, power users and app backends: none is flagged."""
    _, accounts, flagged, _ = outcome
    people = [k for k in accounts if k != "stealth"]
    assert accounts["corp"] >= 20 and sum(accounts[k] for k in people) >= 150
    assert not {k: flagged[k] for k in people if flagged[k]}
