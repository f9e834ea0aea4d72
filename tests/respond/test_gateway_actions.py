"""Defenses the gateway carries out itself (decoy, throttle, block) and shadow mode, end to end."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.conftest import ADMIN_KEY, Gateway, MockUpstream

MESSAGES = [{"role": "user", "content": "Solve step by step: 12 * 7 = ?"}]


def flag(gw: Gateway, account: str = "tester") -> None:
    r = httpx.put(
        gw.base_url.removesuffix("/v1") + f"/admin/accounts/{account}/verdict",
        headers={"authorization": f"Bearer {ADMIN_KEY}"},
        json={"verdict": "flag", "reason": "test", "by": "pytest"},
    )
    assert r.status_code == 200 and r.json()["flagged"]


def policy(actions: list[str], **extra: object) -> dict:
    return {"bands": [{"name": "flagged", "when": {"flagged": True}, "actions": actions}], **extra}


def with_decoy(mock: MockUpstream) -> list[dict]:
    return [
        {
            "name": "m",
            "upstream": {"base_url": mock.base_url, "model": "mock-model"},
            "decoy": {"base_url": mock.base_url, "model": "other-model"},
        }
    ]


def test_decoy_answers_with_the_same_shape(make_gateway, mock: MockUpstream) -> None:  # type: ignore[no-untyped-def]
    gw: Gateway = make_gateway(policy=policy(["decoy"]), models=with_decoy(mock))
    c = openai.OpenAI(base_url=gw.base_url, api_key=gw.key, max_retries=0)
    before = c.chat.completions.create(model="m", messages=MESSAGES, max_tokens=12)
    flag(gw)
    after = c.chat.completions.create(model="m", messages=MESSAGES, max_tokens=12)
    streamed = "".join(
        ch.choices[0].delta.content or ""
        for ch in c.chat.completions.create(model="m", messages=MESSAGES, max_tokens=12, stream=True)
        if ch.choices
    )
    direct = openai.OpenAI(base_url=mock.base_url, api_key="x", max_retries=0)
    decoy = direct.chat.completions.create(model="other-model", messages=MESSAGES, max_tokens=12)
    assert after.choices[0].message.content == decoy.choices[0].message.content != before.choices[0].message.content
    assert streamed == after.choices[0].message.content
    assert after.model == before.model == "m"  # nothing in the shape tells the decoy apart
    assert set(after.model_dump()) == set(before.model_dump())
    rows = gw.events(expect=3)
    assert [(r["action"], r["upstream"]) for r in rows] == [
        ("pass", "principal"),
        ("decoy", "decoy"),
        ("decoy", "decoy"),
    ]
    assert rows[1]["cohort"].startswith("h")  # suspects are keyed to honeypot cohorts


def test_block_and_throttle_refuse_without_retry(make_gateway) -> None:  # type: ignore[no-untyped-def]
    gw: Gateway = make_gateway(policy=policy(["block"]))
    flag(gw)
    h = {"authorization": f"Bearer {gw.key}"}
    r = httpx.post(gw.base_url + "/chat/completions", headers=h, json={"model": "m", "messages": MESSAGES})
    assert r.status_code == 403 and r.headers["x-should-retry"] == "false"
    assert r.json()["error"]["code"] == "account_blocked"
    with pytest.raises(openai.PermissionDeniedError):
        openai.OpenAI(base_url=gw.base_url, api_key=gw.key).chat.completions.create(model="m", messages=MESSAGES)

    gw2: Gateway = make_gateway(policy=policy(["throttle"], options={"throttle": {"retry_after_s": 30}}))
    flag(gw2)
    r = httpx.post(
        gw2.base_url + "/chat/completions",
        headers={"authorization": f"Bearer {gw2.key}"},
        json={"model": "m", "messages": MESSAGES},
    )
    assert r.status_code == 429 and r.headers["retry-after"] == "30" and r.headers["x-should-retry"] == "false"
    assert [e["action"] for e in gw2.events(expect=1)] == ["throttle"]


def test_shadow_mode_decides_and_logs_but_does_not_act(make_gateway) -> None:  # type: ignore[no-untyped-def]
    gw: Gateway = make_gateway(policy=policy(["block"], shadow=True))
    flag(gw)
    c = openai.OpenAI(base_url=gw.base_url, api_key=gw.key, max_retries=0)
    assert c.chat.completions.create(model="m", messages=MESSAGES).choices[0].message.content
    row = gw.events(expect=1)[0]
    assert row["status"] == 200 and row["action"] == "pass" and row["shadowed"] == ["block"]
    metrics = httpx.get(gw.base_url.removesuffix("/v1") + "/metrics").text
    assert 'cuirass_actions_total{action="block",shadow="true"} 1.0' in metrics


def test_allowlisted_account_is_never_acted_on(make_gateway) -> None:  # type: ignore[no-untyped-def]
    gw: Gateway = make_gateway(policy=policy(["block"]))
    flag(gw)
    r = httpx.put(
        gw.base_url.removesuffix("/v1") + "/admin/accounts/tester/verdict",
        headers={"authorization": f"Bearer {ADMIN_KEY}"},
        json={"verdict": "allowlist", "reason": "known partner", "by": "pytest"},
    )
    assert r.json()["flagged"] is False
    c = openai.OpenAI(base_url=gw.base_url, api_key=gw.key, max_retries=0)
    assert c.chat.completions.create(model="m", messages=MESSAGES).choices
