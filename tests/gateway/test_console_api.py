"""The admin API behind the console: an account's requests, score and reasons; a campaign's links, harvest
and one decision for all its members; requests, flags and actions over time. Through HTTP, on `cuirass serve`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import Gateway, MockUpstream
from tests.gateway import console_world
from tests.gateway.console_world import ADMIN, CAMPAIGN, HOSTILE, RING, audit_records, root


@pytest.fixture(scope="module")
def world(mock: MockUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Gateway, dict[str, Any]]]:
    yield from console_world.world(mock, tmp_path_factory.mktemp("console-api"))


def test_console_endpoints_need_the_admin_key(world: tuple[Gateway, dict[str, Any]]) -> None:
    gw, _ = world
    for path in ("/admin/accounts/ring-1/activity", f"/admin/campaigns/{CAMPAIGN}", "/admin/series"):
        assert httpx.get(root(gw) + path, headers={"authorization": f"Bearer {gw.key}"}).status_code == 401
    r = httpx.put(root(gw) + f"/admin/campaigns/{CAMPAIGN}/verdict", json={"verdict": "clear", "reason": "x"})
    assert r.status_code == 401


def test_account_activity_redacts_prompts_unless_asked(world: tuple[Gateway, dict[str, Any]]) -> None:
    gw, _ = world
    with httpx.Client(base_url=root(gw), headers=ADMIN) as a:
        act = a.get("/admin/accounts/ring-1/activity").json()
        ids = [r["request_id"] for r in act["requests"]]
        assert len(ids) == 7 and len(set(ids)) == 7
        assert all("prompt" not in r for r in act["requests"]) and HOSTILE not in str(act)
        # one score per request, in time order, each in [0, 1]; the score rises as templated requests come in
        assert [s["request_id"] for s in act["scores"]] == ids
        assert all(0.0 <= s["score"] <= 1.0 for s in act["scores"])
        assert act["scores"][5]["score"] > act["scores"][0]["score"]
        assert act["reasons"], act
        for reason in act["reasons"]:
            assert reason["evidence"] >= 0.25 and reason["reason"]
            assert reason["requests"] and set(reason["requests"]) <= set(ids)
        shown = a.get("/admin/accounts/ring-1/activity", params={"prompts": "true", "limit": 2}).json()
        assert [r["request_id"] for r in shown["requests"]] == ids[-2:] and shown["truncated"]
        assert shown["requests"][-1]["prompt"] == HOSTILE
        assert a.get("/admin/accounts/ring-1/activity", params={"limit": 0}).status_code == 400
        assert a.get("/admin/accounts/nobody/activity").json()["requests"] == []


def test_campaign_shows_links_and_harvest_before_and_after_the_flag(world: tuple[Gateway, dict[str, Any]]) -> None:
    gw, _ = world
    with httpx.Client(base_url=root(gw), headers=ADMIN) as a:
        c = a.get(f"/admin/campaigns/{CAMPAIGN}").json()
        assert [m["account"] for m in c["members"]] == RING and all(m["flagged"] for m in c["members"])
        assert c["kinds"].get("card") == 1 and c["kinds"].get("network", 0) >= 1  # one card, one address
        card = next(link for link in c["links"] if link["kind"] == "card")
        assert card["value"] == "pf_ring" and card["accounts"] == RING
        assert {(e["a"], e["b"]) for e in c["edges"]} == {
            ("ring-1", "ring-2"),
            ("ring-1", "ring-3"),
            ("ring-2", "ring-3"),
        }
        assert all("card" in e["kinds"] for e in c["edges"])
        h = c["harvest"]
        assert (h["before"], h["after"]) == (9, 10) and h["members"]["ring-1"] == {"before": 3, "after": 4}
        assert h["tokens_before"] > 0 and h["tokens_after"] > 0
        assert a.get("/admin/campaigns/nope").status_code == 404


def test_one_decision_for_every_member_is_audited(world: tuple[Gateway, dict[str, Any]], tmp_path: Path) -> None:
    gw, _ = world
    with httpx.Client(base_url=root(gw), headers=ADMIN) as a:
        assert a.put(f"/admin/campaigns/{CAMPAIGN}/verdict", json={"verdict": "ban", "reason": "x"}).status_code == 400
        r = a.put(
            f"/admin/campaigns/{CAMPAIGN}/verdict",
            json={"verdict": "allowlist", "reason": "lab partner", "by": "carol"},
        )
        assert r.status_code == 200 and [v["account"] for v in r.json()["data"]] == RING
        assert not any(v["flagged"] for v in r.json()["data"])
        for name in RING:
            o = a.get(f"/admin/accounts/{name}").json()["verdict"]["override"]
            assert (o["verdict"], o["by"], o["reason"]) == ("allowlist", "carol", f"campaign {CAMPAIGN}: lab partner")
        series = a.get("/admin/series").json()
        assert sum(sum(b["operator"].values()) for b in series["buckets"]) == 3
        a.put(f"/admin/campaigns/{CAMPAIGN}/verdict", json={"verdict": "flag", "reason": "back on", "by": "carol"})
    recs = [r["data"] for r in audit_records(gw, tmp_path) if r["kind"] == "verdict_override"]
    assert [(d["account"], d["verdict"], d["by"]) for d in recs[-6:]] == [
        *((n, "allowlist", "carol") for n in RING),
        *((n, "flag", "carol") for n in RING),
    ]


def test_series_counts_requests_flags_and_actions(world: tuple[Gateway, dict[str, Any]]) -> None:
    gw, seeded = world
    with httpx.Client(base_url=root(gw), headers=ADMIN) as a:
        s = a.get("/admin/series", params={"bucket": 600}).json()
        assert s["bucket_s"] == 600 and 6 <= len(s["buckets"]) <= 7
        assert sum(b["requests"] for b in s["buckets"]) == seeded["total"]
        assert sum(b["flags"] for b in s["buckets"]) == 3
        assert a.get("/admin/series", params={"since": 0, "bucket": 1}).status_code == 400
        assert a.get("/admin/series", params={"bucket": "x"}).status_code == 400


def test_shadow_mode_shows_what_the_policy_would_have_done(make_gateway) -> None:  # type: ignore[no-untyped-def]
    gw: Gateway = make_gateway(
        policy={"shadow": True, "bands": [{"name": "flagged", "when": {"flagged": True}, "actions": ["block"]}]}
    )
    with httpx.Client(base_url=root(gw), headers=ADMIN) as a:
        a.put("/admin/accounts/tester/verdict", json={"verdict": "flag", "reason": "t", "by": "pytest"})
        c = openai.OpenAI(base_url=gw.base_url, api_key=gw.key, max_retries=0)
        c.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
        gw.events(expect=1)
        act = a.get("/admin/accounts/tester/activity").json()
        assert act["shadow"] is True
        assert [(r["status"], r["action"], r["shadowed"]) for r in act["requests"]] == [(200, "pass", ["block"])]
        s = a.get("/admin/series").json()
        assert sum(b["shadowed"].get("block", 0) for b in s["buckets"]) == 1
        assert sum(b["requests"] for b in s["buckets"]) == 1 and not any(b["actions"] for b in s["buckets"])
