"""The honeypotllm peer runs in its own venv, in event time (skipped where that venv is absent)."""

from __future__ import annotations

import orjson
import pytest

from cuirass.lab.peers import honeypot


@pytest.fixture(scope="module")
def peer_python():
    python = honeypot.python_path()
    if python is None:
        pytest.skip("honeypotllm venv not installed (.venv-peers/honeypotllm)")
    return python


def test_peer_scores_in_event_time(tmp_path, peer_python):
    feed = tmp_path / "feed.jsonl"
    rows = [[1000.0 + 0.1 * i, "scraper", f"what is the capital of country number {i}", 12] for i in range(80)]
    rows += [[1000.0 + 3600.0 * i, "human", f"tell me something new about topic {i * 7}", 12] for i in range(6)]
    rows.sort(key=lambda r: r[0])
    feed.write_bytes(b"".join(orjson.dumps(r, option=orjson.OPT_APPEND_NEWLINE) for r in rows))
    out = honeypot.score(peer_python, feed, tmp_path / "out.json")
    accounts = out["accounts"]
    assert accounts["scraper"]["requests"] == 80 and accounts["human"]["requests"] == 6
    # 80 requests in 8 s of *event* time trip its rate and gap heuristics; hourly ones do not.
    assert accounts["scraper"]["peak"] > 0.75 > accounts["human"]["peak"]
    crossed = honeypot.first_crossing(accounts["scraper"]["steps"], 0.75)
    assert crossed is not None and 1000.0 < crossed < 1008.0


def test_feed_line_takes_the_last_message():
    ev = {
        "ts": 1.5,
        "account": "a",
        "messages": [
            {"role": "user", "content": "x" * 500},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": "continue"},
        ],
        "response": {"usage": {"prompt_tokens": 130}},
    }
    assert orjson.loads(honeypot.feed_line(ev)) == [1.5, "a", "continue", 130]
