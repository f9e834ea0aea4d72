"""Population-level evidence: a thin network linked by loose phrasing, a new member flagged early, bounded state."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest

from cuirass.detect import campaigns
from cuirass.detect import signals as signals_module
from cuirass.detect.engine import Detector
from cuirass.detect.replay import replay
from cuirass.events.record import Event
from tests.detect import scenario

# What people write when they want an explanation, in their own words (common, and shared by many).
OWN_WORDS = (
    "can you explain this step by step please?",
    "Explain your reasoning, I want to understand how you got there.",
    "show your working so I can check it against my notes",
    "walk me through the steps, I keep getting a different answer",
)


def people_with_common_phrasings(n: int, seed: int) -> list[Event]:
    events = scenario.benign(n, seed=seed, prefix="alike")
    rng = random.Random(seed)
    for e in events:
        if len(e.messages) == 1 and rng.random() < 0.3:
            text = e.messages[0]["content"][:500]
            e.messages = [{"role": "user", "content": f"{text}\n\n{rng.choice(OWN_WORDS)}"}]
    return events


@pytest.fixture(scope="module")
def network() -> list[Event]:
    return scenario.by_time(
        scenario.thin(40, seed=7)
        + scenario.thin(6, seed=11, start_day=3.0, requests=8, prefix="joiner")
        + scenario.benign(80, seed=8)
        + people_with_common_phrasings(20, seed=9)
    )


def _run(events: list[Event], without_phrasing: bool, monkeypatch: pytest.MonkeyPatch) -> dict[str, dict]:
    if without_phrasing:
        monkeypatch.setattr(signals_module, "DEFAULT", tuple(n for n in signals_module.DEFAULT if n != "phrasing"))
    report = replay(events, calibration=None, campaign_interval_s=1800)
    return {r["account"]: r for r in report["accounts"]}


def _requests_until_flagged(events: list[Event], rows: dict[str, dict], account: str) -> int | None:
    at = rows[account]["first_flagged_ts"]
    return None if at is None else sum(1 for e in events if e.account == account and e.ts <= at)


def test_a_thin_network_is_flagged_by_its_loose_phrasing_and_people_are_not(
    network: list[Event], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Forty accounts, ten requests each, half of them cover, own address, agent and card: alone each is
    unremarkable; their paraphrased instruction (no exact template in common) links them."""
    rows = _run(network, False, monkeypatch)
    thin = [a for a in rows if a.startswith("thin")]
    assert sum(rows[a]["flagged"] for a in thin) >= 0.6 * len(thin)
    assert not [a for a in rows if a.startswith(("user", "alike")) and rows[a]["flagged"]]
    reasons = [r for a in thin if rows[a]["flagged"] for r in rows[a]["reasons"]]
    assert any("campaign" in r for r in reasons)


def test_without_the_phrasing_sketches_the_thin_network_goes_unseen(
    network: list[Event], monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = _run(network, True, monkeypatch)
    thin = [a for a in rows if a.startswith("thin")]
    assert sum(rows[a]["flagged"] for a in thin) <= 0.3 * len(thin)


def test_a_new_account_joining_a_known_network_is_flagged_within_its_first_requests(
    network: list[Event], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Accounts that start on day 3, once the network is known, are flagged by its phrasing within a few requests
    (half of them cover); without the sketches none is flagged at all."""
    with_sketches = _run(network, False, monkeypatch)
    joiners = sorted(a for a in with_sketches if a.startswith("joiner"))
    at = [_requests_until_flagged(network, with_sketches, a) for a in joiners]
    early = [k for k in at if k is not None and k <= 5]
    assert len(early) >= len(joiners) // 2, at
    without = _run(network, True, monkeypatch)
    assert not any(without[a]["flagged"] for a in joiners)


def _stream(accounts: int, per_account: int) -> Iterator[Event]:
    """A long stream of short-lived accounts, each with prompts of its own (new words, new sentences)."""
    rng = random.Random(5)
    convs = scenario.sharegpt_conversations()
    t = scenario.START
    for i in range(accounts):
        for k in range(per_account):
            text = (
                f"{rng.choice(convs)[0][:400]} Ticket {i} item {k} for project {rng.getrandbits(40):x} in region {i}."
            )
            yield Event(
                ts=t,
                request_id=f"r{i}-{k}",
                account=f"acct-{i}",
                endpoint="/v1/chat/completions",
                model="atlas-1",
                messages=[{"role": "user", "content": text}],
                params={},
                response={"content": "ok"},
                action="pass",
                ip=f"10.{i % 250}.{(i // 250) % 250}.{k + 1}",
                user_agent=f"client/{i}",
                payment_fingerprint=f"pf-{i}",
                account_created=t - 86400.0,
            )
            t += 60.0


def test_the_linking_index_stays_bounded_over_a_long_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    """Accounts come and go: the features interned for the campaign job track the window, not all history."""
    monkeypatch.setattr(campaigns, "INDEX_FLOOR", 2000)
    detector = Detector(campaign_interval_s=3600, campaign_window_s=6 * 3600)
    sizes = []
    for e in _stream(3000, 4):
        detector.observe(e)
        if detector.maybe_run_campaigns(e.ts):
            sizes.append(len(detector._features))
            window_rows = detector.campaign_snapshot(e.ts)
            live = sum(len(r.features) for r in window_rows)
            assert len(detector._features) <= max(campaigns.INDEX_FLOOR, campaigns.INDEX_SLACK * live) + live
    assert len(sizes) > 100
    assert max(sizes[len(sizes) // 2 :]) <= 1.5 * max(sizes[: len(sizes) // 2])  # no growth with time
    assert len(detector.campaigns) <= campaigns.MIN_SIZE + 256
