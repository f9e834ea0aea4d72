"""Campaign detection: linked accounts judged together; big benign groups are not campaigns."""

from __future__ import annotations

import dataclasses
import pickle
import random
import re

import numpy as np

from cuirass.detect import campaigns
from cuirass.detect.engine import Detector
from cuirass.detect.replay import replay
from tests.detect import scenario


def nat_office(n: int = 40, seed: int = 5) -> list:
    """A company: everyone behind one NAT, one card, one SDK, signing up together; ordinary chats."""
    events = scenario.benign(n, seed=seed, prefix="office")
    rng = random.Random(seed)
    for e in events:
        e.ip = f"81.2.69.{rng.randrange(1, 255)}"
        e.user_agent = "OpenAI/Python 1.54.3"
        e.payment_fingerprint = "pf-company-card"
        e.account_created = scenario.START - 200 * scenario.DAY
    return events


def test_campaign_lifts_quiet_members_and_spares_the_office() -> None:
    quiet = scenario.attackers(30, seed=3, per_day=6, shared_infra=True, prefix="quiet")
    events = scenario.by_time(quiet + nat_office() + scenario.benign(40, seed=4))
    report = replay(events, calibration={"threshold": 0.9}, campaign_interval_s=1800)
    rows = {r["account"]: r for r in report["accounts"]}
    campaigns = {c["id"]: c for c in report["campaigns"]}
    members = [a for a in rows if a.startswith("quiet")]
    flagged = [a for a in members if rows[a]["flagged"]]
    assert len(flagged) >= 0.9 * len(members)
    assert any(rows[a]["campaign"] for a in members)
    assert all(not rows[a]["flagged"] for a in rows if a.startswith(("office", "user")))
    for c in campaigns.values():
        assert all(a.startswith("quiet") for a in c["accounts"])
        assert c["reasons"] and 0.0 <= c["score"] <= 1.0
        for reason in c["reasons"]:  # shares of members (new accounts, pivots) are shares, whatever the volumes
            assert all(int(pct) <= 100 for pct in re.findall(r"(\d+)% ", reason)), reason


def test_a_user_who_only_phrases_like_the_campaign_is_not_pulled_into_it() -> None:
    """Five people ask GSM8K-style questions in the campaign's own chain-of-thought phrasing, from their own
    networks, browsers and cards: sharing a phrasing is not enough to be tied to the campaign."""
    quiet = scenario.attackers(30, seed=3, per_day=6, shared_infra=True, prefix="quiet")
    mimics = []
    for e in scenario.attackers(5, seed=11, per_day=4, shared_infra=False, prefix="mimic"):
        e.messages = [m for m in e.messages if m["role"] == "user"]  # no system prompt: the phrasing alone
        mimics.append(e)
    events = scenario.by_time(quiet + mimics + scenario.benign(40, seed=4))
    report = replay(events, calibration={"threshold": 0.9}, campaign_interval_s=1800)
    rows = {r["account"]: r for r in report["accounts"]}
    members = [a for a in rows if a.startswith("quiet")]
    assert sum(rows[a]["flagged"] for a in members) >= 0.9 * len(members)
    assert not any(rows[a]["campaign"] for a in rows if a.startswith("mimic"))


def test_campaign_job_is_deterministic(mixed_events: list) -> None:
    def run() -> tuple:
        d = Detector({"threshold": 0.9}, campaign_interval_s=1e12)
        for e in mixed_events:
            d.observe(e)
        result = d.run_campaigns(mixed_events[-1].ts)
        return tuple((c.id, tuple(c.accounts), round(c.logit, 9)) for c in result.campaigns)

    assert run() == run()


def test_job_over_few_accounts_is_a_no_op() -> None:
    d = Detector()
    d.observe(scenario.benign(1, seed=9)[0])
    result = d.run_campaigns(scenario.START + 10)
    assert result.campaigns == [] and result.lifts == {}


def test_account_facts_pool_as_shares_whatever_the_volumes() -> None:
    """Members sending 10, 100 or 1,000 requests are all new accounts: the campaign is 100% new, not more."""
    import numpy as np

    from cuirass.detect.campaigns import columns, pool
    from cuirass.detect.signals.age import AgeSignal
    from cuirass.detect.signals.coverage import CoverageSignal

    cov, age = CoverageSignal(), AgeSignal()
    facts = columns([cov, age], "per_account")
    assert not facts[: cov.summary_size].any() and facts[cov.summary_size :].all()
    summaries = np.zeros((3, facts.size))
    summaries[:, cov.summary_size] = 1.0  # young: first request within a day of sign-up
    summaries[:, 0] = [5.0, 50.0, 500.0]  # a count that grows with the requests
    pooled = pool(summaries, np.array([10.0, 100.0, 1000.0]), facts, columns([cov, age], "rare_trait"))
    mine = pooled[cov.summary_size :].tolist()
    assert age.explain_pooled(mine, 3) == "new accounts: 100% used within a day of sign-up"
    assert age.pooled_evidence(mine, 3) == 0.5
    assert pooled[0] > 0  # counts still pool as rates at the community's volume


def test_a_trait_shown_once_in_ten_requests_survives_pooling_members_of_two_requests_each() -> None:
    """60 members of two requests each, one request in ten asking for worked steps: almost every member's own
    rate is 0, so the median of members' rates says the network never asks. Pooled from groups of members it
    asks in about one request of ten. Two loud members among 58 quiet ones (all of theirs asking) do not
    make the quiet majority ask."""
    import numpy as np

    from cuirass.detect.campaigns import columns, pool
    from cuirass.detect.signals.elicitation import ReasoningSignal

    signal = ReasoningSignal()
    facts, traits = columns([signal], "per_account"), columns([signal], "rare_trait")
    volumes = np.full(60, 2.0)
    summaries = np.zeros((60, 2))
    summaries[:, 1] = 2.0  # requests that count
    summaries[np.random.default_rng(0).choice(60, 12, replace=False), 0] = 1.0  # 12 asked once: 12 of 120 requests
    pooled = pool(summaries, volumes, facts, traits)
    assert 0.05 <= pooled[0] / pooled[1] <= 0.15
    assert signal.pooled_evidence(pooled.tolist(), 60) > 0
    loud = np.zeros((60, 2))
    loud[:, 1] = 2.0
    loud[:2, 0] = 2.0  # two members ask every time, the other 58 never
    assert pool(loud, volumes, facts, traits)[0] == 0.0


def _lab_jobs(events: list, jobs: int | None = None) -> tuple[Detector, list[int]]:
    """A detector fed the lab's events with its 20-second campaign job (the first `jobs` jobs' worth), and the
    largest campaign's accounts after each job."""
    detector = Detector(campaign_interval_s=20.0)
    largest: list[int] = []
    for e in events:
        detector.observe(e)
        if detector.maybe_run_campaigns(e.ts):
            largest.append(max((len(c.accounts) for c in detector.campaigns.values()), default=0))
            if len(largest) == jobs:
                break
    return detector, largest


def test_a_stealthy_network_of_a_few_requests_per_account_is_a_campaign_from_the_first_job() -> None:
    """The distillation lab's stealthy campaign (200 accounts, one /24, casual frames that now and then ask for
    the steps, cover requests) sends one or two requests per account before the first job: judged on the
    median member, which never asked for steps, it was no campaign until the fourth job."""
    events = scenario.distill_lab(stealth=True)
    detector, first = _lab_jobs(events, jobs=2)
    assert first[0] > 0 and first[1] >= 30, first  # of 200
    people = {e.account for e in events if e.account.startswith("user")}
    assert not [a for a in people if detector.verdict(a).flagged]


def test_a_network_that_rotates_templates_behind_one_proxy_is_one_campaign_from_the_first_job() -> None:
    """The distillation lab's bulk campaign: 40 accounts behind two proxy addresses, each problem in one of eight
    elicitation frames. Modularity splits it into small communities, each too small to lift anyone; joined by
    the proxy network most of each one's members share, it is one campaign at every job. The 20 people who ask
    problems of the same task, a few each, and whom Leiden places beside it, do not make the task's own
    sentences part of its signature: none of them is flagged."""
    events = scenario.distill_lab()
    detector, largest = _lab_jobs(events)
    # Of the 40, from 20 s on. Which few members a job leaves out depends on Leiden's seeded order: 35-40 over
    # seeds 0-3, 34 at three jobs of seed 0 (a split network would leave communities under LIFT_MIN_SIZE).
    assert len(largest) >= 8 and min(largest) >= 34, largest
    people = {e.account for e in events if e.account.startswith("user")}
    assert not [a for a in people if detector.verdict(a).flagged]


def test_people_who_ask_the_harvested_task_do_not_carry_the_signature_of_a_network_on_other_infrastructure() -> None:
    """The lab's stealthy campaign asks the very problems 20 people ask, in the same casual frames, each of its
    200 accounts from its own address of one /24. Its signature is the task's own sentences (the generator's
    numbers-and-names templates) that no person had asked yet; a person who then asked such a problem carried
    it and was flagged. An account without the infrastructure most members share is not attached."""
    events = scenario.distill_lab(stealth=True)
    report = replay(events, campaign_interval_s=20.0)
    rows = {r["account"]: r for r in report["accounts"]}
    assert sum(rows[a]["flagged"] for a in rows if a.startswith("e-")) >= 100  # of 200
    assert not [a for a in rows if a.startswith("user") and rows[a]["flagged"]]


def test_a_card_that_only_people_beside_the_campaign_hold_is_not_its_signature() -> None:
    """In the lab's full run a stealth campaign's community of 860 accounts, of which 40-130 were lifted, held a
    team's company card and a few sentences of four students, and nobody else did: held by its community alone,
    they became its signature, and five students who sent them later carried it and were flagged (benign FPR
    0.28% against 0.1%). A feature none of the lifted members holds says nothing about the campaign."""
    index = campaigns.FeatureIndex()
    phrasing = [("tpl", 0x1111), ("tpl", 0x2222)]
    rows = [
        campaigns.AccountRow(f"member-{i}", 5.0, np.zeros(0), index.intern([*phrasing, ("pay", f"pf-{i}")]), 10.0)
        for i in range(40)
    ] + [
        campaigns.AccountRow(f"person-{i}", 0.0, np.zeros(0), index.intern([phrasing[0], ("pay", "pf-team")]), 3.0)
        for i in range(4)
    ]
    graph = campaigns._Graph(rows, index, seed=0)
    community = np.column_stack([graph.owners, graph.fids])  # all 44 accounts in one community, as Leiden may have it
    unbound = np.zeros(0, dtype=np.int64)  # no infrastructure most members share
    assert campaigns._signature(community, unbound, graph, index, np.arange(40)) == ["tpl:00001111", "tpl:00002222"]
    assert "pay:pf-team" in campaigns._signature(community, unbound, graph, index, np.arange(44))


def test_a_team_beside_a_campaign_is_not_tied_to_it_by_its_own_card_and_network() -> None:
    """Issue 19's run A (seed 1): Leiden placed five colleagues (one card, one office network, one sentence they
    all send) in a 26-account community with 13 members of a stealthy campaign, 8 of them individually suspicious.
    Their card and network tied the team's student, who asks for the steps, to the campaign's judgement, and he was
    flagged. Where suspicious members carry a community, a link ties only where one of them holds it too."""
    index = campaigns.FeatureIndex()
    rows = [
        campaigns.AccountRow(
            f"member-{i}", 1.0, np.zeros(0), index.intern([("tpl", 0x1111), ("net", "10.0.0.0/24")]), 8.0
        )
        for i in range(30)
    ] + [
        campaigns.AccountRow(
            f"colleague-{i}",
            -4.0,
            np.zeros(0),
            index.intern([("tpl", 0x2222), ("pay", "pf-team"), ("net", "81.2.69.0/24")]),
            5.0,
        )
        for i in range(5)
    ]
    graph = campaigns._Graph(rows, index, seed=0)
    pairs = np.column_stack([graph.owners, graph.fids])  # all 35 accounts in one community, as Leiden may have it
    fids, counts = np.unique(pairs[:, 1], return_counts=True)
    core = campaigns.individually_suspicious(np.array([r.own for r in rows]))
    before = campaigns.tied(fids, counts, pairs, graph, index, len(rows))
    assert set(before.tolist()) == set(range(35))
    now = campaigns.tied(fids, counts, pairs, graph, index, len(rows), core)
    assert set(now.tolist()) == set(range(30))


def test_a_community_of_the_accounts_a_campaign_lifted_stays_that_campaign_when_its_own_evidence_fades() -> None:
    """The lab's agentic network was judged a campaign in its first two days, then its pooled evidence faded (its
    accounts were no longer new, its pacing looser) under the bar, and the accounts that joined it later went
    unflagged until the model release three days on (leakage 11%). A community most of whose accounts the last
    job lifted keeps that campaign's judgement; one that holds only a few of them is judged on its own."""
    network = scenario.attackers(30, seed=3, per_day=6, shared_infra=True, prefix="net")
    people = scenario.benign(20, seed=4)
    detector = Detector()
    for e in scenario.by_time(network + people):
        detector.observe(e)
    rows = detector.campaign_snapshot(detector.last_ts)
    members = [r.account for r in rows if r.account.startswith("net")]

    def job(bar: float, standing: dict[str, float] | None) -> campaigns.CampaignResult:
        signals = detector.scorer.signals
        return campaigns.run(rows, detector._features, signals, bar, detector.last_ts, standing=standing)

    fresh = job(0.0, None)
    (campaign,) = fresh.campaigns
    assert set(campaign.accounts) == set(members)
    high = campaign.logit - 0.5  # a threshold this network's own evidence no longer clears by LIFT_MARGIN
    assert not job(high, None).campaigns
    carried = job(high, dict.fromkeys(members, high + 1.5))
    assert {a for c in carried.campaigns for a in c.accounts} == set(members)
    assert any("lifted by the last job's campaign" in r for c in carried.campaigns for r in c.reasons)
    assert not job(high, dict.fromkeys(members[:8], high + 1.5)).campaigns  # 8 of 30: judged on its own


def test_a_jobs_result_does_not_depend_on_the_order_its_features_were_met() -> None:
    """A replay, the shards' leader and Spark intern linking features in different orders; Leiden's communities
    depend on the order of the graph's vertices, so the leader once lifted 18 accounts where the replay lifted 22,
    and with the lifts carried to the next job (`standing`) their verdicts parted. Feature vertices now go in the
    order of a key of their name."""
    events = scenario.by_time(
        scenario.attackers(30, seed=3, per_day=6, shared_infra=False, prefix="net") + scenario.benign(60, seed=4)
    )
    detector = Detector()
    for e in events:
        detector.observe(e)
    rows = detector.campaign_snapshot(detector.last_ts)
    index = detector._features
    backwards = campaigns.FeatureIndex()
    for feature in reversed(index.features):
        backwards.intern([feature])
    remap = np.array([backwards.ids[f] for f in index.features])
    again = [dataclasses.replace(r, features=np.sort(remap[r.features])) for r in rows]
    assert not np.array_equal(rows[0].features, again[0].features)

    def outcome(rows: list, index: campaigns.FeatureIndex) -> tuple:
        result = campaigns.run(rows, index, detector.scorer.signals, 2.0, detector.last_ts)
        found = [(c.id, c.accounts, c.logit, c.reasons, c.signature) for c in result.campaigns]
        return found, result.lifts, result.signatures, result.assignment

    forwards = outcome(rows, index)
    assert forwards[0]  # the network is a campaign
    assert outcome(again, backwards) == forwards
    restored = pickle.loads(pickle.dumps(index))
    del restored.__dict__["_keys"]  # an index pickled by an earlier version (a leader's job)
    restored.__setstate__(dict(restored.__dict__))
    assert np.array_equal(restored.keys(np.arange(len(index))), index.keys(np.arange(len(index))))
