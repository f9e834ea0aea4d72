"""Text defenses on a reasoning model's trace sent apart (`reasoning_content`, as vLLM's and DeepSeek's
servers send it): the trace is defended like the answer, and a flagged client gets the same defended words
whether or not the upstream runs a reasoning parser."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from cuirass.engine.reasoning import ThinkParser
from cuirass.models.problems import problems
from cuirass.respond.apply import rewrite_stream, rewrite_whole
from cuirass.respond.base import DEFENSES, DefenseContext
from cuirass.respond.responder import load_defenses

load_defenses()
CTX = DefenseContext(account="a", cohort="c003", prompt="p", endpoint="/v1/chat/completions", model="m", key=b"k" * 32)
# The flagged band's rewriting defenses, each always on (strip_reasoning is what the band uses to drop the trace).
CHAIN = [
    DEFENSES["perturb"](),
    DEFENSES["canary"](rate=1.0),
    DEFENSES["watermark"](invisible=True),
    DEFENSES["signature"](),
]


def defend(text: str) -> str:
    for d in CHAIN:
        text = d.transform(text, CTX)
    return text


def parsed(raw: str) -> tuple[str, str]:
    """(reasoning, content) as the local engine's `think` parser sends them."""
    p = ThinkParser()
    r, c = p.feed(raw)
    r2, c2 = p.finish()
    return r + r2, c + c2


def chat(content: str, reasoning: str | None = None) -> dict[str, Any]:
    msg = {"role": "assistant", "content": content} | ({"reasoning_content": reasoning} if reasoning else {})
    return {"id": "x", "choices": [{"index": 0, "finish_reason": "stop", "message": msg}]}


def chunks(reasoning: str, content: str, size: int = 7) -> list[dict[str, Any]]:
    """A stream as the engine sends one: role, the trace in pieces, the answer in pieces, the finish."""

    def delta(d: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {"id": "x", "choices": [{"index": 0, "delta": d, "finish_reason": finish}]}

    out = [delta({"role": "assistant", "content": ""})]
    out += [delta({"reasoning_content": reasoning[i : i + size]}) for i in range(0, len(reasoning), size)]
    out += [delta({"content": content[i : i + size]}) for i in range(0, len(content), size)]
    return [*out, delta({}, "stop")]


def streamed(out: list[dict[str, Any]]) -> tuple[str, str, list[str]]:
    """The trace and the answer a client assembles, and the order of the fields it saw."""
    r, c, order = [], [], []
    for ch in out:
        for choice in ch["choices"]:
            d = choice["delta"]
            if d.get("reasoning_content"):
                r.append(d["reasoning_content"])
                order.append("reasoning")
            if d.get("content"):
                c.append(d["content"])
                order.append("content")
    return "".join(r), "".join(c), order


REPLIES = [p.solution for p in problems(60, seed=5)]


def test_the_trace_is_defended_and_the_same_with_or_without_a_reasoning_parser() -> None:
    changed = 0
    for raw in REPLIES:
        reasoning, content = parsed(raw)
        assert reasoning and content.startswith("The answer is")
        whole = rewrite_whole(chat(content, reasoning), True, defend, strip_fields=False)["choices"][0]["message"]
        as_text = rewrite_whole(chat(raw), True, defend, strip_fields=False)["choices"][0]["message"]["content"]
        # The reasoning-parser server's client gets the defended text of the parser-less server, split.
        assert (whole["reasoning_content"], whole["content"]) == parsed(as_text)
        stream = rewrite_stream(chunks(reasoning, content), True, defend, strip_fields=False)
        r, c, order = streamed(stream)
        assert (r, c) == (whole["reasoning_content"], whole["content"])
        assert order == sorted(order, key=lambda f: f != "reasoning")  # the whole trace, then the answer
        changed += whole["reasoning_content"] != reasoning
    assert changed >= len(REPLIES) * 0.9  # the trace itself is what the defenses change


def test_strip_fields_drops_the_trace_and_defends_the_answer() -> None:
    reasoning, content = parsed(REPLIES[0])
    msg = rewrite_whole(chat(content, reasoning), True, defend, strip_fields=True)["choices"][0]["message"]
    assert "reasoning_content" not in msg and msg["content"] == defend(content)
    r, c, _ = streamed(rewrite_stream(chunks(reasoning, content), True, defend, strip_fields=True))
    assert r == "" and c == defend(content)


def _same(text: str) -> str:
    return text


@settings(max_examples=200, deadline=None)
@given(reasoning=st.text(min_size=1), content=st.text(), size=st.integers(1, 9))
def test_a_rewrite_that_changes_nothing_returns_every_byte(reasoning: str, content: str, size: int) -> None:
    """Whatever the upstream sent (tags inside the trace, odd whitespace), an identity rewrite is exact."""
    resp = chat(content, reasoning)
    msg = rewrite_whole(copy.deepcopy(resp), True, _same, strip_fields=False)["choices"][0]["message"]
    assert (msg["reasoning_content"], msg["content"]) == (reasoning, content)
    r, c, _ = streamed(rewrite_stream(chunks(reasoning, content, size), True, _same, strip_fields=False))
    assert (r, c) == (reasoning, content)


@settings(max_examples=100, deadline=None)
@given(reasoning=st.text(min_size=1), content=st.text())
def test_a_rewrite_that_breaks_the_tags_still_defends_both_parts(reasoning: str, content: str) -> None:
    def shout(text: str) -> str:  # moves no tag, but a rewrite could: then each part is rewritten alone
        return text.replace("</think>", "").upper() + "!"

    msg = rewrite_whole(chat(content, reasoning), True, shout, strip_fields=False)["choices"][0]["message"]
    assert msg["reasoning_content"].endswith("!") or msg["content"].endswith("!")
    assert "</think>" not in msg["reasoning_content"] + msg["content"]
