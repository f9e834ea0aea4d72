"""Operator side: admin API behind its own key, health, readiness and metrics."""

from __future__ import annotations

import time

import httpx
import openai
import pytest

from tests.conftest import ADMIN_KEY, Gateway

ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}


def test_admin_needs_the_admin_key(gateway: Gateway) -> None:
    root = gateway.base_url.removesuffix("/v1")
    for headers in ({}, {"authorization": f"Bearer {gateway.key}"}, {"authorization": "Bearer wrong"}):
        r = httpx.get(root + "/admin/accounts", headers=headers)
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_admin_key"


def test_admin_account_and_key_lifecycle(gateway: Gateway) -> None:
    root = gateway.base_url.removesuffix("/v1")
    with httpx.Client(base_url=root, headers=ADMIN) as a:
        acc = a.post(
            "/admin/accounts", json={"name": "Lab X", "org": "labx", "tags": ["trial"], "payment_fingerprint": "pf_123"}
        ).json()
        assert acc["org"] == "labx" and acc["tags"] == ["trial"]
        assert a.post("/admin/accounts", json={"name": "dup", "id": acc["id"]}).status_code == 409
        key = a.post(f"/admin/accounts/{acc['id']}/keys", json={"requests_per_min": 100}).json()
        assert key["key"].startswith("sk-cui-")
        c = openai.OpenAI(base_url=gateway.base_url, api_key=key["key"], max_retries=0)
        assert c.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}]).choices
        shown = a.get(f"/admin/accounts/{acc['id']}").json()
        assert [k["key_id"] for k in shown["keys"]] == [key["key_id"]]
        assert "hash" not in shown["keys"][0] and key["key"] not in str(shown)
        assert a.delete(f"/admin/keys/{key['key_id']}").status_code == 200
        with pytest.raises(openai.AuthenticationError):
            c.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
        assert any(x["id"] == acc["id"] for x in a.get("/admin/accounts").json()["data"])
        gateway.events(expect=1)
        deadline = time.monotonic() + 5
        while not any('"account":"{}"'.format(acc["id"]) in line for line in a.get("/admin/events").text.splitlines()):
            assert time.monotonic() < deadline, "the account's request never reached the exported log"
            time.sleep(0.05)


@pytest.mark.parametrize(
    "method, path, body, status",
    [
        ("POST", "/admin/accounts", {"name": ""}, 400),
        ("POST", "/admin/accounts", {"name": "x", "bogus": 1}, 400),
        ("POST", "/admin/accounts", {"name": "x", "id": "bad id!"}, 400),
        ("GET", "/admin/accounts/nope", None, 404),
        ("POST", "/admin/accounts/nope/keys", {}, 404),
        ("POST", "/admin/accounts/tester/keys", {"requests_per_min": 0}, 400),
        ("DELETE", "/admin/keys/nope", None, 404),
        ("GET", "/admin/accounts?limit=x", None, 400),
        ("GET", "/admin/events?since=yesterday", None, 400),
    ],
)
def test_admin_bad_input(gateway: Gateway, method: str, path: str, body: dict | None, status: int) -> None:
    root = gateway.base_url.removesuffix("/v1")
    r = httpx.request(method, root + path, json=body, headers=ADMIN)
    assert r.status_code == status, r.text
    assert set(r.json()["error"]) == {"message", "type", "param", "code"}


def test_health_readiness_metrics(gateway: Gateway) -> None:
    root = gateway.base_url.removesuffix("/v1")
    assert httpx.get(root + "/health/liveness").json() == {"status": "ok"}
    ready = httpx.get(root + "/health/readiness").json()
    assert (
        ready["status"] == "ready" and ready["event_store"]["reachable"] and ready["event_store"]["backend"] == "sqlite"
    )
    openai.OpenAI(base_url=gateway.base_url, api_key=gateway.key, max_retries=0).chat.completions.create(
        model="m", messages=[{"role": "user", "content": "hi"}], stream=False
    )
    text = httpx.get(root + "/metrics").text
    for name in (
        "cuirass_requests_total",
        "cuirass_request_duration_seconds_bucket",
        "cuirass_time_to_first_token_seconds",
        "cuirass_upstream_errors_total",
        "cuirass_event_queue_depth",
        "cuirass_actions_total",
        "cuirass_upstream_duration_seconds",
    ):
        assert name in text, name
    assert 'cuirass_requests_total{endpoint="/v1/chat/completions",status="200"}' in text
    assert 'cuirass_upstream_duration_seconds_count{upstream="principal"}' in text


def test_models_needs_a_key(gateway: Gateway) -> None:
    assert httpx.get(gateway.base_url + "/models").status_code == 401


def test_operator_verdicts_are_recorded_with_who_and_why(gateway: Gateway) -> None:
    root = gateway.base_url.removesuffix("/v1")
    with httpx.Client(base_url=root, headers=ADMIN) as a:
        r = a.put("/admin/accounts/tester/verdict", json={"verdict": "flag", "reason": "ticket 42", "by": "alice"})
        assert r.status_code == 200 and r.json()["flagged"] is True
        assert [v["account"] for v in a.get("/admin/accounts", params={"flagged": "true"}).json()["data"]] == ["tester"]
        a.put("/admin/accounts/tester/verdict", json={"verdict": "clear", "reason": "false alarm", "by": "bob"})
        assert a.get("/admin/accounts", params={"flagged": "true"}).json()["data"] == []
        shown = a.get("/admin/accounts/tester").json()["verdict"]
        assert shown["override"]["verdict"] == "clear" and shown["override"]["by"] == "bob"
        assert [(h["verdict"], h["by"], h["reason"]) for h in shown["history"]] == [
            ("flag", "alice", "ticket 42"),
            ("clear", "bob", "false alarm"),
        ]
        assert a.get("/admin/campaigns").json() == {"object": "list", "data": []}
        bad = [
            ({"verdict": "ban", "reason": "x"}, 400),
            ({"verdict": "flag"}, 400),
            ({"verdict": "flag", "reason": "x", "extra": 1}, 400),
        ]
        for body, status in bad:
            assert a.put("/admin/accounts/tester/verdict", json=body).status_code == status
        assert a.put("/admin/accounts/ghost/verdict", json={"verdict": "flag", "reason": "x"}).status_code == 404
        assert a.get("/admin/accounts", params={"flagged": "maybe"}).status_code == 400


def test_dashboard_page_is_served_without_secrets(gateway: Gateway) -> None:
    r = httpx.get(gateway.base_url.removesuffix("/v1") + "/dashboard")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "content-security-policy" in r.headers and r.headers["x-frame-options"] == "DENY"
    assert "/admin/accounts?flagged=true" in r.text  # it drives the admin API with the key the operator types
    assert ADMIN_KEY not in r.text and gateway.key not in r.text
