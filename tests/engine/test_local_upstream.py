"""The local engine behind the Upstream interface, in-process: shapes, sampling controls, errors."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from cuirass.config import ConfigError, UpstreamConfig, load_settings
from cuirass.upstream.base import UpstreamError
from cuirass.upstream.local import LocalUpstream

CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"
MSGS = [{"role": "user", "content": "how many apples are left?"}]


@pytest.fixture(scope="module")
def up(tiny_dir: Path) -> LocalUpstream:
    u = LocalUpstream("tiny", UpstreamConfig(type="local", path=str(tiny_dir), device="cpu"))
    asyncio.run(u.start())
    yield u
    asyncio.run(u.close())


def complete(up: LocalUpstream, body: dict[str, Any], endpoint: str = CHAT, **kw: Any) -> dict[str, Any]:
    return asyncio.run(up.complete(endpoint, {"model": "tiny", **body}, **kw))


def stream(up: LocalUpstream, body: dict[str, Any], endpoint: str = CHAT, **kw: Any) -> list[list[dict[str, Any]]]:
    async def go() -> list[list[dict[str, Any]]]:
        return [b async for b in up.stream(endpoint, {"model": "tiny", **body}, **kw)]

    return asyncio.run(go())


def test_config_needs_a_path_for_local_and_a_url_for_http() -> None:
    with pytest.raises(ValueError, match="needs path"):
        UpstreamConfig(type="local")
    with pytest.raises(ValueError, match="needs base_url"):
        UpstreamConfig()
    with pytest.raises(ConfigError):
        load_settings(models=[{"name": "x", "upstream": {"type": "local"}}])


def test_chat_completion_shape_and_usage(up: LocalUpstream) -> None:
    r = complete(up, {"messages": MSGS, "max_tokens": 12, "seed": 3})
    assert r["object"] == "chat.completion" and r["id"].startswith("chatcmpl-")
    (c,) = r["choices"]
    assert c["message"]["role"] == "assistant" and isinstance(c["message"]["content"], str)
    assert c["finish_reason"] in ("stop", "length")
    u = r["usage"]
    assert u["prompt_tokens"] > 0 and 1 <= u["completion_tokens"] <= 12
    assert u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"]


def test_max_tokens_is_honoured(up: LocalUpstream) -> None:
    for n in (1, 7):
        r = complete(up, {"messages": MSGS, "max_completion_tokens": n, "temperature": 0})
        assert r["usage"]["completion_tokens"] <= n
    r = complete(up, {"prompt": "one two three", "max_tokens": 20, "temperature": 0}, COMPLETIONS)
    assert r["object"] == "text_completion"
    if r["choices"][0]["finish_reason"] == "length":
        assert r["usage"]["completion_tokens"] == 20


def test_seed_makes_sampling_reproducible(up: LocalUpstream) -> None:
    body = {"messages": MSGS, "max_tokens": 30, "seed": 11, "temperature": 1.0}
    a, b = complete(up, body), complete(up, body)
    c = complete(up, dict(body, seed=12))
    text = lambda r: r["choices"][0]["message"]["content"]  # noqa: E731
    assert text(a) == text(b)
    assert text(a) != text(c)
    g1 = complete(up, {"messages": MSGS, "max_tokens": 20, "temperature": 0, "seed": 1})
    g2 = complete(up, {"messages": MSGS, "max_tokens": 20, "temperature": 0, "seed": 2})
    assert text(g1) == text(g2)  # greedy ignores the seed


def test_stop_string_cuts_the_answer(up: LocalUpstream) -> None:
    body = {"prompt": "the total is", "max_tokens": 40, "temperature": 0}
    full = complete(up, body, COMPLETIONS)["choices"][0]["text"]
    stop = full[len(full) // 2 : len(full) // 2 + 2]
    assert stop.strip()
    r = complete(up, dict(body, stop=[stop, "zzzz-never"]), COMPLETIONS)["choices"][0]
    assert r["finish_reason"] == "stop"
    assert r["text"] == full[: full.index(stop)]
    chunks = [c for b in stream(up, dict(body, stop=stop), COMPLETIONS) for c in b]
    assert "".join(c["choices"][0]["text"] for c in chunks if c["choices"]) == r["text"]


def test_stream_chunks_match_the_whole_answer(up: LocalUpstream) -> None:
    body = {"messages": MSGS, "max_tokens": 25, "seed": 5, "stream_options": {"include_usage": True}}
    whole = complete(up, body)
    chunks = [c for b in stream(up, body) for c in b]
    assert chunks[0]["object"] == "chat.completion.chunk"
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == whole["choices"][0]["message"]["content"]
    finish = [c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert len(finish) == 1 and finish[0]["choices"][0]["finish_reason"] == whole["choices"][0]["finish_reason"]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == whole["usage"]
    assert len({c["id"] for c in chunks}) == 1


def test_n_choices_use_seed_plus_index(up: LocalUpstream) -> None:
    r = complete(up, {"messages": MSGS, "max_tokens": 10, "seed": 40, "n": 2})
    one = complete(up, {"messages": MSGS, "max_tokens": 10, "seed": 41})
    assert [c["index"] for c in r["choices"]] == [0, 1]
    assert r["choices"][1]["message"]["content"] == one["choices"][0]["message"]["content"]


def test_processor_hook_changes_the_output(up: LocalUpstream) -> None:
    seen: list[int] = []

    def make(tokenizer: Any) -> Any:
        def ban_greedy(input_ids: Any, scores: Any) -> Any:
            seen.append(int(input_ids.shape[-1]))
            scores = scores.clone()
            scores[0, scores.argmax()] = float("-inf")
            return scores

        return ban_greedy

    body = {"messages": MSGS, "max_tokens": 8, "temperature": 0}
    plain = complete(up, body)["choices"][0]["message"]["content"]
    hooked = complete(up, body, processors=[make])
    assert hooked["choices"][0]["message"]["content"] != plain
    n = hooked["usage"]["completion_tokens"]
    p = hooked["usage"]["prompt_tokens"]
    assert seen == list(range(p, p + n))  # once per token, with the sequence so far


@pytest.mark.parametrize(
    "bad,param",
    [
        ({"temperature": 3}, "temperature"),
        ({"logprobs": True}, "logprobs"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"n": 99}, "n"),
    ],
)
def test_bad_parameters_are_a_400_before_any_chunk(up: LocalUpstream, bad: dict[str, Any], param: str) -> None:
    body = {"messages": MSGS, "max_tokens": 5, **bad}
    with pytest.raises(UpstreamError) as err:
        complete(up, body)
    assert err.value.status == 400 and err.value.body["error"]["param"] == param
    with pytest.raises(UpstreamError) as err:
        stream(up, body)
    assert err.value.status == 400


def test_prompt_longer_than_the_context_is_refused(up: LocalUpstream) -> None:
    with pytest.raises(UpstreamError, match="context"):
        complete(up, {"prompt": list(range(1, 200)) * 3, "max_tokens": 5}, COMPLETIONS)


def test_missing_model_fails_at_start(tmp_path: Path) -> None:
    u = LocalUpstream("x", UpstreamConfig(type="local", path=str(tmp_path / "nothing")))
    with pytest.raises(UpstreamError, match=r"config.json missing"):
        asyncio.run(u.start())


def test_cancelled_stream_stops_generation(up: LocalUpstream) -> None:
    calls: list[int] = []
    done = threading.Event()

    def make(tokenizer: Any) -> Any:
        def count(input_ids: Any, scores: Any) -> Any:
            calls.append(1)
            time.sleep(0.005)
            return scores

        return count

    async def go() -> None:
        it = up.stream(COMPLETIONS, {"model": "tiny", "prompt": "one", "max_tokens": 400, "seed": 1}, processors=[make])
        await it.__anext__()
        await it.aclose()
        done.set()

    asyncio.run(go())
    time.sleep(0.3)
    n = len(calls)
    time.sleep(0.2)
    assert len(calls) == n < 400  # stopped, well before max_tokens


def test_top_p_zero_is_greedy_and_n_streams(up: LocalUpstream) -> None:
    greedy = complete(up, {"messages": MSGS, "max_tokens": 15, "temperature": 0})
    nucleus = complete(up, {"messages": MSGS, "max_tokens": 15, "temperature": 1.0, "top_p": 0, "seed": 9})
    assert nucleus["choices"][0]["message"]["content"] == greedy["choices"][0]["message"]["content"]
    chunks = [c for b in stream(up, {"messages": MSGS, "max_tokens": 6, "n": 2, "seed": 1}) for c in b]
    texts = [
        "".join(
            c["choices"][0]["delta"].get("content", "")
            for c in chunks
            if c["choices"] and c["choices"][0]["index"] == i
        )
        for i in (0, 1)
    ]
    whole = complete(up, {"messages": MSGS, "max_tokens": 6, "n": 2, "seed": 1})
    assert texts == [c["message"]["content"] for c in whole["choices"]]
