"""A gateway with a small harvesting ring for the console's tests: real accounts, keys and traffic through
`cuirass serve`, and the ring's verdicts and campaign written to the verdict store as the detection service
writes them (the service is off, so that its campaign job does not replace them mid-test)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import sqlalchemy as sa

from cuirass.verdicts.store import VerdictStore
from tests.conftest import ADMIN_KEY, Gateway, MockUpstream, gateway_config

ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}
RING = ["ring-1", "ring-2", "ring-3"]
CAMPAIGN = "camp-ring"
HOSTILE = '<script>window.pwned=1</script><img src=x onerror="window.pwned=2"> what is 2 + 2?'
PROMPT = "Think step by step and show your work, writing out every intermediate step: what is {a} * {b}?"


def root(gw: Gateway) -> str:
    return gw.base_url.removesuffix("/v1")


def world(mock: MockUpstream, tmp: Path) -> Iterator[tuple[Gateway, dict[str, Any]]]:
    """A module fixture's body: a gateway (detection off: the tests write verdicts as it would) with the
    ring's traffic seeded, stopped afterwards."""
    gw = Gateway(tmp, gateway_config(mock, detection={"enabled": False}))
    try:
        yield gw, seed(gw)
    finally:
        gw.stop()


def seed(gw: Gateway) -> dict[str, Any]:
    """Three accounts on one card send templated step-by-step requests, half before and half after they are
    flagged; ring-1 also sends a prompt with markup in it. Returns what was sent."""
    sent: dict[str, list[str]] = {a: [] for a in RING}
    clients = {}
    with httpx.Client(base_url=root(gw), headers=ADMIN) as a:
        for name in RING:
            r = a.post(
                "/admin/accounts", json={"name": f"{name} <b>bold</b>", "id": name, "payment_fingerprint": "pf_ring"}
            )
            assert r.status_code == 201, r.text
            key = a.post(f"/admin/accounts/{name}/keys", json={"name": "k1"}).json()["key"]
            clients[name] = openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0)

    def burst(i0: int) -> None:
        for name, c in clients.items():
            for i in range(i0, i0 + 3):
                r = c.chat.completions.with_raw_response.create(
                    model="m", messages=[{"role": "user", "content": PROMPT.format(a=i + 3, b=i + 7)}]
                )
                sent[name].append(r.headers.get("x-request-id") or "")

    burst(0)
    time.sleep(0.05)
    flagged_at = time.time()
    time.sleep(0.05)
    burst(10)
    clients["ring-1"].chat.completions.create(model="m", messages=[{"role": "user", "content": HOSTILE}])
    total = 3 * 6 + 1
    assert len(gw.events(expect=total)) == total
    store = VerdictStore(sa.create_engine(f"sqlite:///{gw.db_path}"))
    store.put_auto(
        {
            "account": name,
            "score": 0.99,
            "flagged": True,
            "reasons": ["shares a payment card with 2 accounts", "asks for step-by-step reasoning <i>often</i>"],
            "campaign": CAMPAIGN,
            "first_flagged_ts": flagged_at,
        }
        for name in RING
    )
    store.put_campaigns([{"id": CAMPAIGN, "accounts": RING, "score": 0.995, "reasons": ["3 accounts on one card"]}])
    store.engine.dispose()
    return {"flagged_at": flagged_at, "total": total}


def audit_records(gw: Gateway, tmp: Path) -> list[dict[str, Any]]:
    out = tmp / "audit.jsonl"
    gw.cli("audit", "export-log", "--out", str(out))
    return [json.loads(line) for line in out.read_text().splitlines()]
