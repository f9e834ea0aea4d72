"""A reasoning model behind a real gateway, through the openai client: the reasoning block comes back as
`reasoning_content` (byte for byte for an unflagged account), streamed before the answer; a flagged account
gets it stripped by the default policy. The model is a scripted one (cuirass.engine.tiny.write_scripted_model:
it always writes the same reply), loaded and sampled by the same code as any other."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from cuirass.engine.tiny import SCRIPT
from tests.conftest import ADMIN_KEY, Gateway

QUESTION = [{"role": "user", "content": "Tom has 17 apples. He buys 25 more and then gives 9 to his sister. How many?"}]
REASONING, ANSWER = "two plus three makes five ", "answer: 5"  # SCRIPT split by the parser


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    from cuirass.engine.tiny import write_scripted_model

    path = write_scripted_model(tmp_path_factory.mktemp("scripted"))
    local = {"type": "local", "path": str(path), "device": "cpu", "threads": 1}
    cfg: dict[str, Any] = {
        "models": [
            {"name": "reasoner", "upstream": {**local, "reasoning_parser": "think"}},
            {"name": "raw", "upstream": local},  # the same weights, text as generated
        ],
        "events": {"flush_interval_s": 0.05},
        "detection": {"enabled": False},
    }
    g = Gateway(tmp_path_factory.mktemp("gw-reasoning"), cfg)
    yield g
    g.stop()


@pytest.fixture(scope="module")
def client(gw: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key=gw.key, max_retries=0)


def _streamed(client: openai.OpenAI, **kw: Any) -> tuple[str, str, list[str]]:
    """(reasoning, content, kinds in order) of a streamed chat completion."""
    reasoning, content, kinds = "", "", []
    for ch in client.chat.completions.create(model="reasoner", stream=True, **kw):
        if not ch.choices:
            continue
        r, c = getattr(ch.choices[0].delta, "reasoning_content", None), ch.choices[0].delta.content
        reasoning, content = reasoning + (r or ""), content + (c or "")
        kinds += ["r"] * bool(r) + ["c"] * bool(c)
    return reasoning, content, kinds


def test_unflagged_gets_the_block_as_reasoning_content_byte_for_byte(client: openai.OpenAI) -> None:
    raw = client.chat.completions.create(model="raw", messages=QUESTION, seed=5).choices[0].message
    assert raw.content == SCRIPT and getattr(raw, "reasoning_content", None) is None
    whole = client.chat.completions.create(model="reasoner", messages=QUESTION, seed=5).choices[0]
    assert (whole.message.reasoning_content, whole.message.content) == (REASONING, ANSWER)  # type: ignore[attr-defined]
    assert whole.finish_reason == "stop"
    reasoning, content, kinds = _streamed(client, messages=QUESTION, seed=5)
    assert (reasoning, content) == (REASONING, ANSWER)
    assert kinds.count("r") >= 3 and "c" in kinds and kinds == sorted(kinds, key="rc".index)  # token by token


def test_cut_inside_the_block_is_all_reasoning(client: openai.OpenAI) -> None:
    short = client.chat.completions.create(model="reasoner", messages=QUESTION, max_tokens=3).choices[0]
    assert short.finish_reason == "length"
    assert (short.message.reasoning_content, short.message.content) == ("two plus", "")  # type: ignore[attr-defined]
    assert _streamed(client, messages=QUESTION, max_tokens=3)[:2] == ("two plus", "")
    stopped = client.chat.completions.create(model="reasoner", messages=QUESTION, stop=["</think>"]).choices[0]
    assert (stopped.message.reasoning_content, stopped.message.content) == (REASONING, "")  # type: ignore[attr-defined]
    assert _streamed(client, messages=QUESTION, stop=["</think>"])[:2] == (REASONING, "")


def test_completions_return_the_raw_text(client: openai.OpenAI) -> None:
    r = client.completions.create(model="reasoner", prompt="<|user|> hi <|assistant|>", max_tokens=50)
    assert r.choices[0].text == SCRIPT
    streamed = "".join(
        c.choices[0].text
        for c in client.completions.create(
            model="reasoner", prompt="<|user|> hi <|assistant|>", max_tokens=50, stream=True
        )
        if c.choices
    )
    assert streamed == SCRIPT


def test_flagged_account_gets_the_reasoning_stripped(gw: Gateway, client: openai.OpenAI) -> None:
    admin = gw.base_url.removesuffix("/v1") + "/admin/accounts/tester/verdict"
    auth = {"authorization": f"Bearer {ADMIN_KEY}"}
    r = httpx.put(admin, headers=auth, json={"verdict": "flag", "reason": "e2e", "by": "pytest"})
    assert r.status_code == 200
    try:
        whole = client.chat.completions.create(model="reasoner", messages=QUESTION, seed=5).choices[0].message
        reasoning, content, kinds = _streamed(client, messages=QUESTION, seed=5)
    finally:
        httpx.put(admin, headers=auth, json={"verdict": "clear", "reason": "e2e done", "by": "pytest"})
    assert getattr(whole, "reasoning_content", None) is None and reasoning == "" and "r" not in kinds
    assert whole.content and content and "two plus" not in whole.content + content
    deadline = time.monotonic() + 10  # events are written in the background
    while not (rows := [e for e in gw.events() if e["account"] == "tester" and e["action"] != "pass"]):
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert rows and "strip_reasoning" in rows[-1]["actions"]
