"""The traffic generator: deterministic, schema-valid, and faithful to its campaign parameters."""

from __future__ import annotations

import dataclasses
from collections import Counter, defaultdict

import pytest

from cuirass.events.record import Event, read_jsonl
from cuirass.lab.traffic import PRESETS, generate, labels_path, parse_campaign
from cuirass.lab.traffic.record import user
from cuirass.lab.traffic.sources import sharegpt

from .conftest import SMALL


def _campaign(labels, kind):
    return [c for c in labels["campaigns"] if c["kind"] == kind]


def test_same_seed_same_bytes_and_other_seed_differs(tmp_path, small_traffic):
    out, _, _ = small_traffic
    again = tmp_path / "again.jsonl"
    generate(SMALL, again)
    assert again.read_bytes() == out.read_bytes()
    assert labels_path(again).read_bytes() == labels_path(out).read_bytes()
    other = tmp_path / "other.jsonl"
    generate(dataclasses.replace(SMALL, seed=8, campaigns=SMALL.campaigns[:1], benign_accounts=20), other)
    assert other.read_bytes()[:5000] != out.read_bytes()[:5000]


def test_every_record_is_a_valid_event_in_time_order(small_traffic):
    out, labels, events = small_traffic
    parsed = list(read_jsonl(out))
    assert len(parsed) == len(events) == labels["events"] > 1000
    window = labels["window"]
    last = 0.0
    for raw, ev in zip(events, parsed):
        assert Event.from_dict(raw).to_dict()["request_id"] == ev.request_id
        assert ev.ts >= last and window["start"] <= ev.ts < window["end"]
        last = ev.ts
        assert ev.action == "pass" and ev.endpoint == "/v1/chat/completions"
        assert ev.ip and ev.user_agent and ev.payment_fingerprint and ev.org
        assert ev.account_created is not None and ev.account_created <= ev.ts
        assert ev.messages and ev.messages[-1]["role"] in ("user", "tool")
        assert set(ev.response) == {"content", "finish_reason", "usage"}
        usage = ev.response["usage"]
        assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0
    assert len({e["request_id"] for e in events}) == len(events)
    assert set(labels["accounts"]) >= {e["account"] for e in events}


def test_labels_never_leak_into_events(small_traffic):
    _, labels, events = small_traffic
    assert all(not k.startswith("_") for e in events[:2000] for k in e)
    accounts = list(labels["accounts"])
    assert all(a.startswith("acct_") and len(a) == 21 for a in accounts)


def test_campaign_account_counts(small_traffic):
    _, labels, events = small_traffic
    active = Counter(e["account"] for e in events)
    naive = _campaign(labels, "naive")
    assert len(naive) == 3 and all(len(c["accounts"]) == 1 for c in naive)
    for kind, n in (("hydra", 40), ("stealth", 30), ("agentic", 10), ("rubric", 10)):
        (c,) = _campaign(labels, kind)
        assert len(c["accounts"]) == n
        assert sum(a in active for a in c["accounts"]) >= 0.8 * n


def test_shared_infrastructure_fraction(small_traffic):
    _, labels, events = small_traffic
    (hydra,) = _campaign(labels, "hydra")
    nets, cards, agents = (set(hydra["shared"][k]) for k in ("ip_prefixes", "payment_fingerprints", "user_agents"))
    ips, fps, uas = defaultdict(set), {}, {}
    for e in events:
        if e["account"] in hydra["accounts"]:
            ips[e["account"]].add(e["ip"].rsplit(".", 1)[0])
            fps[e["account"]], uas[e["account"]] = e["payment_fingerprint"], e["user_agent"]
    assert sum(ips[a] <= nets for a in ips) == 20 == round(0.5 * len(hydra["accounts"]))
    assert sum(fps[a] in cards for a in fps) == 20
    assert 20 <= sum(uas[a] in agents for a in uas) <= 30  # others may pick the same common SDK
    (stealth,) = _campaign(labels, "stealth")
    assert not stealth["shared"]["ip_prefixes"]
    stealth_fps = [e["payment_fingerprint"] for e in events if e["account"] in stealth["accounts"]]
    assert len(set(stealth_fps)) == len({e["account"] for e in events if e["account"] in stealth["accounts"]})


def test_benign_mix_fraction_and_disjoint_pools(small_traffic):
    _, labels, events = small_traffic
    pool, decoy = sharegpt()
    decoy_prompts = {user(u)["content"] for conv in decoy for u, _ in conv.turns}
    assert not {c.id for c in pool} & {c.id for c in decoy}
    (stealth,) = _campaign(labels, "stealth")
    members = set(stealth["accounts"])
    per = defaultdict(lambda: [0, 0])
    for e in events:
        if e["account"] in members:
            per[e["account"]][0] += 1
            per[e["account"]][1] += e["messages"][-1]["content"] in decoy_prompts
    total = sum(n for n, _ in per.values())
    cover = sum(c for _, c in per.values())
    assert abs(cover / total - 0.5) < 0.03
    assert all(abs(c - 0.5 * n) <= 1 for n, c in per.values())
    (hydra,) = _campaign(labels, "hydra")
    h = [e for e in events if e["account"] in set(hydra["accounts"])]
    assert abs(sum(e["messages"][-1]["content"] in decoy_prompts for e in h) / len(h) - 0.1) < 0.03
    # Benign accounts do not send the attackers' cover conversations (only prompts that real users
    # happen to repeat across conversations, such as "continue", may coincide).
    benign = {a for a, i in labels["accounts"].items() if i["label"] == "benign"}
    benign_first_turns = [
        e["messages"][-1]["content"] for e in events if e["account"] in benign and len(e["messages"]) == 1
    ]
    assert sum(t in decoy_prompts for t in benign_first_turns) <= 0.05 * len(benign_first_turns)


def test_pivot_to_new_model(small_traffic):
    _, labels, events = small_traffic
    release, new = labels["window"]["release"], labels["new_model"]
    assert all(e["model"] != new for e in events if e["ts"] < release)
    (hydra,) = _campaign(labels, "hydra")
    late = [e for e in events if e["account"] in set(hydra["accounts"]) and e["ts"] > release + 6 * 3600]
    assert late and all(e["model"] == new for e in late)


def test_benign_population_has_hard_negatives(small_traffic):
    _, labels, events = small_traffic
    kinds = Counter(i["kind"] for i in labels["accounts"].values() if i["label"] == "benign")
    assert {"casual", "power", "student", "chat_app", "wrapper_app", "tutor_app"} <= set(kinds)
    by_kind = defaultdict(list)
    for e in events:
        by_kind[labels["accounts"][e["account"]]["kind"]].append(e)
    chat = by_kind["chat_app"]
    assert len({e["messages"][0]["content"] for e in chat}) <= 2  # one system prompt per product
    assert len({e["messages"][1]["content"] for e in chat}) > 0.2 * len(chat)  # many end users
    assert any(len(e["messages"]) > 2 for e in by_kind["casual"])  # follow-ups carry history
    assert any("step" in e["messages"][-1]["content"].lower() for e in by_kind["student"] + by_kind["tutor_app"])


def test_parse_campaign_overrides_and_errors():
    spec = parse_campaign("stealth:500:benign_mix=0.8,paraphrase=1,pivot=false")
    assert (spec.accounts, spec.benign_mix, spec.paraphrase, spec.pivot) == (500, 0.8, 1, False)
    assert parse_campaign("hydra:7").shared_infra == PRESETS["hydra"].shared_infra
    for bad in ("nope:3", "hydra:x", "hydra:3:bogus=1", "hydra:3:benign_mix=2", "hydra:0", "hydra:3:pivot=maybe"):
        with pytest.raises(ValueError):
            parse_campaign(bad)


def test_cli_traffic(tmp_path):
    from click.testing import CliRunner

    from cuirass.cli import main

    out = tmp_path / "t.jsonl"
    runner = CliRunner()
    res = runner.invoke(
        main,
        [
            "lab",
            "traffic",
            "--out",
            str(out),
            "--benign-accounts",
            "20",
            "--days",
            "1",
            "--campaign",
            "hydra:5",
            "--no-progress",
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    assert '"events"' in res.output and out.exists() and labels_path(out).exists()
    res = runner.invoke(main, ["lab", "traffic", "--out", str(out), "--campaign", "bogus:3"])
    assert res.exit_code == 2 and "unknown campaign kind" in res.output
    res = runner.invoke(main, ["lab", "traffic", "--out", str(out), "--days", "0"])
    assert res.exit_code == 2


def test_cli_detect_rejects_bad_input(tmp_path):
    from click.testing import CliRunner

    from cuirass.cli import main

    runner = CliRunner()
    for args in (["--fpr", "0"], ["--fpr", "1"], ["--campaign", "hydra:x"], ["--benign-accounts", "1"]):
        res = runner.invoke(main, ["lab", "detect", "--quick", "--out", str(tmp_path), *args])
        assert res.exit_code == 2 and "Invalid value" in res.output, args
