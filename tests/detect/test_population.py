"""Population-level evidence: a thin network linked by loose phrasing, a new member flagged early, bounded state."""

from __future__ import annotations

import dataclasses
import os
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cuirass.detect import campaigns
from cuirass.detect import signals as signals_module
from cuirass.detect.campaigns import CampaignResult
from cuirass.detect.digest import digest
from cuirass.detect.engine import Detector
from cuirass.detect.replay import replay, replay_detector
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


def _later(events: list[Event], days: float) -> list[Event]:
    for e in events:
        e.ts += days * scenario.DAY
        e.account_created = (e.account_created or e.ts) + days * scenario.DAY
    return events


def test_a_network_known_from_an_earlier_window_flags_its_new_accounts_by_their_first_requests(
    network: list[Event],
) -> None:
    """Ten days after the network was found, eight fresh accounts of it arrive beside new people. Too few to be
    found as a network again in that window, they go unseen by a detector that starts empty; one that remembers
    the networks known before (Detector.remember) flags some of them within five requests (those whose first
    requests already share the network's phrasing), and no person."""
    first, _ = replay_detector(network, campaign_interval_s=1800)
    known = first.known_networks()
    assert known
    later = scenario.by_time(
        _later(scenario.thin(8, seed=12, requests=8, prefix="fresh"), 10.0)
        + _later(scenario.benign(60, seed=21, prefix="later"), 10.0)
        + _later(people_with_common_phrasings(20, seed=22), 10.0)
    )
    flagged = {}
    for memory in ((), known):
        detector, _ = replay_detector(later, campaign_interval_s=1800, known=memory)
        flagged[bool(memory)] = {v.account: v.first_flagged_ts for v in detector.verdicts() if v.flagged}
    fresh = sorted({e.account for e in later if e.account.startswith("fresh")})
    assert not [a for a in flagged[False] if a.startswith("fresh")]
    rows = {a: {"first_flagged_ts": flagged[True].get(a)} for a in fresh}
    at = [_requests_until_flagged(later, rows, a) for a in fresh]
    assert len([k for k in at if k is not None and k <= 5]) >= len(fresh) // 4, at
    assert not [a for memory in flagged.values() for a in memory if a.startswith(("later", "alike"))]


def _fallen_quiet(network: list[Event]) -> tuple[Detector, float]:
    """The network's detector at a campaign job 2.5 days after its last request: too few of its members are active
    to be judged a campaign, and the signatures jobs found before stay installed."""
    detector, _ = replay_detector(network, campaign_interval_s=1800)
    assert detector.last_ts is not None
    now = detector.last_ts + 2.5 * scenario.DAY
    assert not detector.run_campaigns(now).campaigns
    return detector, now


def _send(detector: Detector, account: str, ts: float, messages: list[dict[str, Any]], like: Event) -> bool:
    """One request of `account` (on `like`'s address, agent and card), observed; whether the account is flagged."""
    detector.observe(dataclasses.replace(like, account=account, ts=ts, request_id=f"{account}-{ts}", messages=messages))
    return detector.verdict(account).flagged


def test_a_new_member_is_flagged_by_one_exact_sentence_of_the_networks_signature_until_it_expires(
    network: list[Event],
) -> None:
    """A thin member writes the network's instruction once in several requests. After the network fell quiet, a
    fresh account of it that sends three requests with one exact sentence of the signature is flagged by it
    (before, one sentence was never enough, and no signature outlived a job that found no campaign); its ordinary
    chat before that is not. People who send one such request are not its members: one sentence lends at most
    PHRASING_LIFT over an account's own evidence (with the campaign's full log-odds, 21 of these 100 people were
    flagged). The signature expires a campaign window after the last job that found it."""
    detector, now = _fallen_quiet(network)
    signature = {f for c in detector.campaigns.values() for f in c.signature}
    keys = {int(f.partition(":")[2], 16): f for f in signature if f.startswith(("tpl:", "near:"))}
    carrying: dict[str, list[Event]] = {}  # the network's requests that carry one signature feature, by feature
    for e in network:
        if e.account.startswith("thin"):
            d = digest(e)
            if len(found := {keys[k] for k in (*d.keys, *d.near) if k in keys}) == 1:
                carrying.setdefault(found.pop(), []).append(e)
    sentence, harvest = max(carrying.items(), key=lambda kv: len(kv[1]))
    assert sentence.startswith("tpl:") and len(harvest) >= 3
    like = scenario.thin(1, seed=99, prefix="fresh")[0]
    chat = [{"role": "user", "content": scenario.sharegpt_conversations()[5][0][:2000]}]
    assert not _send(detector, "fresh", now + 60, chat, like)
    for i, e in enumerate(harvest[:3]):
        _send(detector, "fresh", now + (i + 1) * 3600, e.messages, like)
    assert "carries the signature" in detector.verdict("fresh").reasons[0]

    first = {e.account: e for e in reversed(network) if e.account.startswith(("user", "alike"))}
    assert len(first) == 100
    pasted = [e for es in carrying.values() for e in es]
    flagged = [
        _send(detector, person, now + 900 + i, pasted[i % len(pasted)].messages, like)
        for i, (person, like) in enumerate(sorted(first.items()))
    ]
    assert sum(flagged) <= 3

    later = now + 1.5 * scenario.DAY  # 4 days after the last job that found the network (the window is 3)
    detector.run_campaigns(later)
    for i, e in enumerate(harvest[:3]):
        _send(detector, "fresh-late", later + (i + 1) * 3600, e.messages, like)
    assert not detector.verdict("fresh-late").flagged


def test_a_networks_loose_phrasing_is_not_matched_after_a_job_that_did_not_find_it(network: list[Event]) -> None:
    """Exact sentences of a signature outlive the jobs that do not find the network; its near-duplicate phrasings
    do not. Kept for days, loose phrasing was matched by people who ask for the steps in their own words (a student
    in issue 19's run A, seed 2)."""
    two_days = [e for e in network if e.ts <= network[0].ts + 2 * scenario.DAY]  # its first jobs find its phrasing
    detector, _ = replay_detector(two_days, campaign_interval_s=1800)
    assert detector.last_ts is not None
    installed = dict(detector._signature_keys)  # hash -> (campaign id, feature), as the last job left them
    near = {k for k, (_, f) in installed.items() if f.startswith("near:")}
    paraphrased = []  # the network's requests whose only installed signature features are near-duplicates
    for e in network:
        d = digest(e)
        if e.account.startswith("thin") and near.intersection(d.near) and not installed.keys() & set(d.keys):
            paraphrased.append(e)
    assert len(paraphrased) >= 3
    like = scenario.thin(1, seed=99, prefix="fresh")[0]
    _send(detector, "fresh-now", detector.last_ts + 60, paraphrased[0].messages, like)
    assert detector.scorer.accounts["fresh-now"].matches  # matched while the job that found the network is the last

    now = detector.last_ts + 2.5 * scenario.DAY
    assert not detector.run_campaigns(now).campaigns
    for i, e in enumerate(paraphrased[:3]):
        _send(detector, "fresh", now + (i + 1) * 3600, e.messages, like)
    assert not detector.scorer.accounts["fresh"].matches
    assert any(f.startswith("tpl:") for f in detector._signed)  # the exact sentences are still installed


def test_signature_matches_add_up_across_campaign_jobs(network: list[Event]) -> None:
    """A network that rotates two system prompts (one alone is not enough: apps share system prompts). A member
    sends one before a campaign job and the other after it: the job does not forget the first match."""
    detector, now = _fallen_quiet(network)
    campaign = next(iter(detector.campaigns.values()))
    signed = {int(f[4:], 16) for c in detector.campaigns.values() for f in c.signature if f.startswith("tpl:")}
    tasks = [
        e.messages
        for e in network
        if e.account.startswith("thin") and "step" in e.messages[0]["content"] and signed.isdisjoint(digest(e).keys)
    ]
    systems = ("You are a careful maths tutor.", "Answer as a patient homework helper would.")
    prompts = [[{"role": "system", "content": text}, *task] for text, task in zip(systems, tasks)]
    like = scenario.thin(1, seed=98, prefix="member")[0]
    keys = [digest(dataclasses.replace(like, messages=m)).system_key for m in prompts]
    detector.apply_campaigns(CampaignResult(now, [], [campaign], {}, {f"sys:{k:08x}": campaign.id for k in keys}))
    assert not _send(detector, "member", now + 60, prompts[0], like)
    detector.run_campaigns(now + 3600)
    assert _send(detector, "member", now + 3700, prompts[1], like)
    assert detector.verdict("member").reasons[0].startswith(f"carries the signature of campaign {campaign.id}")


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


def test_known_networks_are_bounded_and_survive_a_checkpoint(network: list[Event]) -> None:
    """A detector keeps at most MAX_KNOWN networks of KNOWN_MEMBERS rows each, and a restart from its checkpoint
    remembers them (their rows join the next job, their signatures are matched) and the recent jobs' signatures."""
    from cuirass.detect import checkpoint
    from cuirass.detect.engine import MAX_KNOWN

    first, _ = replay_detector(network, campaign_interval_s=1800)
    known = first.known_networks()
    assert known and all(len(n.members) <= campaigns.KNOWN_MEMBERS for n in known)
    many = [
        campaigns.KnownNetwork(dataclasses.replace(known[0].campaign, id=f"c-{i}"), known[0].members)
        for i in range(MAX_KNOWN + 5)
    ]
    detector = Detector(campaign_interval_s=1800)
    detector.remember(many)
    assert len(detector._remembered) == MAX_KNOWN and "c-0" not in detector.campaigns
    assert len(detector._known_rows) == MAX_KNOWN * len(known[0].members)
    restarted = Detector(campaign_interval_s=1800)
    checkpoint.load_shared(restarted, checkpoint.dump_shared(detector))
    assert list(restarted._remembered) == list(detector._remembered)
    assert len(restarted._known_rows) == len(detector._known_rows)
    assert restarted._signature_keys.keys() == detector._signature_keys.keys()
    resumed = Detector(campaign_interval_s=1800)  # the signatures of recent jobs, with when each was found
    checkpoint.load_shared(resumed, checkpoint.dump_shared(first))
    assert first._signed and resumed._signed == first._signed
    assert resumed._signature_keys == first._signature_keys


def _attribution() -> str | None:
    """The campaign an account is attributed to when it carries two campaigns' signatures that tie (same log-odds):
    its matches were made under one campaign whose signature features two campaigns hold by the next job."""
    detector = Detector()
    like = scenario.thin(1, seed=99, prefix="x")[0]
    task = "A farmer has 12 cows and buys 7 more. How many cows does he have now? Explain step by step."
    prompts = [
        [
            {"role": "system", "content": f"You are the {name} helper; answer carefully."},
            {"role": "user", "content": task},
        ]
        for name in ("amber", "cobalt", "jade", "scarlet")
    ]
    keys = [f"sys:{digest(dataclasses.replace(like, messages=m)).system_key:08x}" for m in prompts]
    assert len(set(keys)) == 4

    def send(account: str, ts: float, messages: list[dict[str, Any]]) -> None:
        detector.observe(
            dataclasses.replace(like, account=account, ts=ts, request_id=f"{account}-{ts}", messages=messages)
        )

    for i, m in enumerate(prompts):  # what the campaigns' typical member looks like
        send("twin", like.ts + 600 * i, m)
    pooled = list(detector.scorer.summary(detector.scorer.accounts["twin"]))
    t = like.ts + 3600
    old = campaigns.Campaign("c-old", ["twin"], 1.0, [], keys, pooled)
    detector.apply_campaigns(CampaignResult(t, [], [old], {}, dict.fromkeys(keys, "c-old")))
    for i, m in enumerate(prompts):
        send("member", t + 600 * (i + 1), m)
    assert not detector.verdict("member").flagged
    tied = [campaigns.Campaign(cid, ["twin"], 8.0, [], [], pooled) for cid in ("c-a", "c-b")]
    detector.apply_campaigns(CampaignResult(t + 7200, ["member"], tied, {}, dict(zip(keys, ["c-a", "c-b"] * 2))))
    return detector.verdict("member").campaign


def test_the_campaign_an_account_is_attributed_to_does_not_change_between_runs() -> None:
    """A report replayed twice from the same log must name the same campaigns: a forensic report that changes
    between runs cannot be shown to anyone. Sets of strings iterate in an order that depends on the process's hash
    seed, so every Python process may see them differently; where an account carried two campaigns' signatures
    that tie, it was attributed to whichever set order met first (7 of 8,942 accounts of the 1M-event benchmark
    log changed campaigns between two runs)."""
    root = Path(__file__).resolve().parents[2]
    code = "from tests.detect.test_population import _attribution; print(_attribution())"
    seen = {
        subprocess.run(
            [sys.executable, "-c", code],
            cwd=root,
            env={**os.environ, "PYTHONHASHSEED": str(seed)},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for seed in range(8)
    }
    assert len(seen) == 1 and seen.pop() in ("c-a", "c-b")
