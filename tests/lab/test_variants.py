"""The issue-19 variants: each generates traffic with the properties it claims (thin, stealth_chat,
agentic_cloud, hard negatives), from held-out tasks and wording, and `vary` really varies them."""

from __future__ import annotations

import dataclasses
import random
from collections import Counter, defaultdict

import orjson
import pytest

from cuirass.lab.traffic import PRESETS, TrafficConfig, generate
from cuirass.lab.traffic.campaigns import VARY, vary
from cuirass.lab.traffic.identity import CLOUD
from cuirass.lab.traffic.sources import harvest
from cuirass.lab.traffic.templates import COT, COT_HELDOUT, FOLLOW_UP_HELDOUT


@pytest.fixture(scope="module")
def variants(tmp_path_factory):
    """Two weeks of the three variants beside a few benign people and 160 hard negatives."""
    out = tmp_path_factory.mktemp("variants") / "v.jsonl"
    config = TrafficConfig(
        seed=11,
        benign_accounts=20,
        days=14.0,
        hard_negatives=150,
        campaigns=(
            dataclasses.replace(PRESETS["thin"], accounts=80),
            dataclasses.replace(PRESETS["stealth_chat"], accounts=12),
            dataclasses.replace(PRESETS["agentic_cloud"], accounts=8),
        ),
    )
    labels = generate(config, out, harvest_times=True)
    by_account = defaultdict(list)
    for line in out.read_bytes().splitlines():
        ev = orjson.loads(line)
        by_account[ev["account"]].append(ev)
    return labels, by_account


def _members(labels, kind):
    return [a for c in labels["campaigns"] if c["kind"] == kind for a in c["accounts"]]


def _harvest_events(labels, by_account, kind):
    times = labels["harvest_times"]
    return [e for a in _members(labels, kind) for e in by_account[a] if e["ts"] in set(times.get(a, ()))]


def test_thin_accounts_each_have_their_own_infrastructure_and_about_a_dozen_requests(variants):
    labels, by_account = variants
    active = [a for a in _members(labels, "thin") if by_account[a]]
    assert len(active) >= 70
    counts = [len(by_account[a]) for a in active]
    assert max(counts) <= 12 and sorted(counts)[len(counts) // 2] >= 8  # capped at 12, most near it
    for field in ("ip", "payment_fingerprint", "user_agent"):
        owners = defaultdict(set)
        for a in active:
            for e in by_account[a]:
                owners[e[field]].add(a)
        assert all(len(o) == 1 for o in owners.values()), field  # nothing shared between two accounts
    assert all(e["user_agent"].startswith("Mozilla/5.0") for a in active for e in by_account[a])


def test_thin_network_shares_a_few_loose_heldout_wordings_paraphrased(variants):
    labels, by_account = variants
    prompts = [e["messages"][-1]["content"] for e in _harvest_events(labels, by_account, "thin")]
    assert len(prompts) > 300
    assert not any(w.lower() in p.lower() for p in prompts for w in COT)  # the lab's wording is never used
    verbatim = Counter(w for p in prompts for w in COT_HELDOUT if w.lower() in p.lower())
    assert 1 <= len(verbatim) <= 3  # a few base wordings shared across the network ...
    assert sum(verbatim.values()) < 0.35 * len(prompts)  # ... mostly paraphrased, not repeated verbatim
    heldout = {i.task for name in ("gsm8k_heldout", "humaneval_heldout", "seed_tasks_heldout") for i in harvest(name)}
    lab = {i.task for name in ("gsm8k", "seed_tasks") for i in harvest(name)}
    hits_heldout = sum(any(t[:80] in p for t in heldout) for p in prompts[:200])
    hits_lab = sum(any(t[:80] in p for t in lab) for p in prompts[:200])
    assert hits_heldout > 100 and hits_lab == 0  # tasks only from the held-out slice


def test_heldout_tasks_are_disjoint_from_the_labs():
    for name in ("gsm8k", "humaneval", "seed_tasks"):
        lab, held = {i.key for i in harvest(name)}, {i.key for i in harvest(f"{name}_heldout")}
        assert lab and held and not lab & held
        assert 0.15 < len(held) / (len(lab) + len(held)) < 0.35


def test_stealth_chat_mixes_cover_and_follow_ups_that_read_the_answer(variants):
    labels, by_account = variants
    members = [a for a in _members(labels, "stealth_chat") if by_account[a]]
    events = [e for a in members for e in by_account[a]]
    harvested = sum(len(labels["harvest_times"].get(a, ())) for a in members)
    assert 0.3 < 1 - harvested / len(events) < 0.75  # cover about half
    follow = [e for e in events if e["messages"][-1]["content"] in FOLLOW_UP_HELDOUT]
    assert len(follow) > 0.15 * harvested
    assert all(e["messages"][-2]["role"] == "assistant" for e in follow)  # they follow up on the answer


def test_agentic_cloud_harvests_tools_from_own_cloud_hosts(variants):
    labels, by_account = variants
    clouds = {p.split(".")[0] for p in CLOUD}
    owners = defaultdict(set)
    for a in _members(labels, "agentic_cloud"):
        for e in by_account[a]:
            owners[e["ip"]].add(a)
            assert e["ip"].split(".")[0] in clouds
    assert owners and all(len(o) == 1 for o in owners.values())
    assert sum("tools" in e["params"] for e in _harvest_events(labels, by_account, "agentic_cloud")) > 50


def test_hard_negatives_are_large_organisations_behind_one_nat_and_card(variants):
    labels, by_account = variants
    corp = [a for a, i in labels["accounts"].items() if i["kind"] == "corp" and by_account[a]]
    assert len(corp) > 100
    orgs = Counter(by_account[a][0]["org"] for a in corp)
    assert max(orgs.values()) >= 30
    biggest = max(orgs, key=orgs.__getitem__)
    cards = {e["payment_fingerprint"] for a in corp for e in by_account[a] if e["org"] == biggest}
    assert len(cards) == 1
    assert Counter(i["kind"] for i in labels["accounts"].values())["tutor_app"] >= 2


def test_vary_draws_each_variant_inside_its_ranges_and_differs_by_seed():
    for kind, ranges in VARY.items():
        a, b = vary(PRESETS[kind], random.Random(1)), vary(PRESETS[kind], random.Random(2))
        assert a != b and a.wording_seed != b.wording_seed
        for name, (lo, hi) in ranges.items():
            assert lo <= getattr(a, name) <= hi
