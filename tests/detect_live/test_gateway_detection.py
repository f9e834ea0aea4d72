"""Online detection through the real gateway: a scraper driven by the openai client gets flagged,
shows in the admin API and the CLI, and then receives the policy's actions; a normal user does not."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import openai

from tests.conftest import ADMIN_KEY, Gateway

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def gsm8k(n: int) -> list[str]:
    with open(DATA / "gsm8k_train.jsonl") as fh:
        return [json.loads(line)["question"] for _, line in zip(range(n), fh)]


def wait_flagged(gw: Gateway, account: str, timeout: float = 30) -> dict:
    admin = {"authorization": f"Bearer {ADMIN_KEY}"}
    root = gw.base_url.removesuffix("/v1")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        flagged = httpx.get(root + "/admin/accounts", params={"flagged": "true"}, headers=admin).json()["data"]
        hit = [v for v in flagged if v["account"] == account]
        if hit:
            return hit[0]
        time.sleep(0.2)
    raise AssertionError(f"{account} was not flagged within {timeout}s")


def test_obvious_scraper_is_flagged_and_then_defended(make_gateway) -> None:  # type: ignore[no-untyped-def]
    gw: Gateway = make_gateway(
        detection={"poll_interval_s": 0.1, "refresh_s": 0.2, "campaign_interval_s": 5},
        policy={"bands": [{"name": "flagged", "when": {"flagged": True}, "actions": ["throttle"]}]},
    )
    normal = json.loads(gw.cli("accounts", "create", "normal user", "--id", "normal", "--with-key", "--json").stdout)
    user = openai.OpenAI(base_url=gw.base_url, api_key=normal["key"], max_retries=0)
    scraper = openai.OpenAI(base_url=gw.base_url, api_key=gw.key, max_retries=0)
    for i, q in enumerate(gsm8k(40)):
        try:
            scraper.chat.completions.create(
                model="m",
                temperature=0,
                max_tokens=8,
                messages=[
                    {"role": "system", "content": "You are an expert tutor. Always show every step."},
                    {
                        "role": "user",
                        "content": "Think step by step and write out your full reasoning before "
                        "giving the final answer.\n\n" + q,
                    },
                ],
            )
        except openai.RateLimitError:
            break  # the policy's throttle took over: detection worked online
        if i % 3 == 0:
            user.chat.completions.create(
                model="m",
                max_tokens=8,
                messages=[
                    {
                        "role": "user",
                        "content": [
                            "Can you suggest a name for my bakery?",
                            "What should I cook tonight?",
                            "How do I politely decline a meeting?",
                        ][i % 9 // 3],
                    }
                ],
            )
    verdict = wait_flagged(gw, "tester")
    assert verdict["score"] > 0.5 and verdict["reasons"]
    shown = httpx.get(
        gw.base_url.removesuffix("/v1") + "/admin/accounts/tester", headers={"authorization": f"Bearer {ADMIN_KEY}"}
    ).json()
    assert shown["verdict"]["flagged"] and any("step" in r for r in shown["verdict"]["reasons"])
    cli = json.loads(gw.cli("accounts", "list", "--flagged", "--json").stdout)
    assert [v["account"] for v in cli] == ["tester"]  # the normal user is not flagged
    time.sleep(0.5)  # verdict cache refresh
    try:
        scraper.chat.completions.create(model="m", messages=[{"role": "user", "content": "one more"}])
        raise AssertionError("a flagged scraper should be throttled by the policy")
    except openai.RateLimitError as err:
        assert err.response.headers["x-should-retry"] == "false"
    assert user.chat.completions.create(model="m", messages=[{"role": "user", "content": "thanks!"}]).choices
