"""detect.explain: an account's own score and the requests behind each reason; what ties a campaign's members."""

from __future__ import annotations

from typing import Any

from cuirass.detect.explain import account_history, campaign_links


def event(i: int, account: str, text: str, **extra: Any) -> dict[str, Any]:
    return {
        "ts": 1_700_000_000.0 + 60 * i,
        "request_id": f"{account}-{i}",
        "account": account,
        "endpoint": "/v1/chat/completions",
        "model": "m",
        "messages": [{"role": "user", "content": text}],
        "ip": "203.0.113.7",
        **extra,
    }


HARVEST = "Think step by step and show your work, writing out every intermediate step: what is {} * 7?"


def test_reasons_point_at_the_requests_that_raised_them() -> None:
    chat = [event(i, "a", f"hi, any tips for a trip to Lisbon in {m}?") for i, m in enumerate(["May", "June"])]
    harvest = [event(i, "a", HARVEST.format(i)) for i in range(2, 30)]
    out = account_history([*reversed(harvest), *chat, {"not": "an event"}])  # order and junk do not matter
    assert [s["request_id"] for s in out["scores"]] == [f"a-{i}" for i in range(30)]
    assert out["scores"][-1]["score"] > 0.5 > out["scores"][1]["score"]
    assert out["reasons"] and out["reasons"] == sorted(out["reasons"], key=lambda r: -r["evidence"])
    reasoning = next(r for r in out["reasons"] if r["signal"] == "reasoning")
    assert set(reasoning["requests"]) <= {e["request_id"] for e in harvest}  # the chat is not behind it
    assert "a-29" in reasoning["requests"]  # nor only the first requests, before the evidence reached its cap
    assert account_history([]) == {"scores": [], "reasons": []}


def test_campaign_links_by_kind() -> None:
    rows = [event(i, acc, HARVEST.format(i), payment_fingerprint="pf_1") for acc in ("a", "b") for i in range(5)]
    rows += [event(300 + i, "c", f"where can I buy a bike in town number {i}?", ip="198.51.100.9") for i in range(5)]
    rows += [event(i, "z", HARVEST.format(i), payment_fingerprint="pf_1") for i in range(5)]  # not a member
    out = campaign_links(rows, ["a", "b", "c"])
    assert out["kinds"]["card"] == 1 and out["kinds"]["phrasing"] >= 1 and out["kinds"]["network"] >= 1
    assert {(e["a"], e["b"]) for e in out["edges"]} == {("a", "b")}  # c shares nothing with them
    assert all(set(link["accounts"]) == {"a", "b"} for link in out["links"] if link["kind"] != "focus")
