"""The gateway in front of the local engine, through the real `openai` client, streaming and not."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from cuirass.keyring import Keyring
from cuirass.marks.logit.detect import detect_text
from tests.conftest import Gateway, MockUpstream

MASTER = "engine-test-master-secret-0123456789"
WM = {"gamma": 0.25, "delta": 4.0, "context": 2, "min_prob": 0}  # a random model finds no token plausible
MSGS = [{"role": "user", "content": "how many coins are left?"}]


@pytest.fixture(scope="module")
def gw(tiny_dir: Path, mock: MockUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    local = {"type": "local", "path": str(tiny_dir), "device": "cpu"}
    cfg: dict[str, Any] = {
        "models": [
            {"name": "tiny", "upstream": local},
            {"name": "tiny-wm", "upstream": local},  # the same loaded model, watermarked by the policy
            {"name": "remote-wm", "upstream": {"base_url": mock.base_url, "model": "mock-model"}},
        ],
        "policy": {
            "models": {
                "tiny-wm": {"default_actions": ["logit_watermark"]},
                "remote-wm": {"default_actions": ["logit_watermark"]},
            },
            "options": {"logit_watermark": WM},
        },
        "events": {"flush_interval_s": 0.05},
        "detection": {"enabled": False},
    }
    g = Gateway(tmp_path_factory.mktemp("gw-local"), cfg, env={"CUIRASS_MASTER_SECRET": MASTER})
    yield g
    g.stop()


@pytest.fixture(scope="module")
def client(gw: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key=gw.key, max_retries=0)


def test_models_and_non_streaming_chat(client: openai.OpenAI) -> None:
    assert {"tiny", "tiny-wm"} <= {m.id for m in client.models.list()}
    r = client.chat.completions.create(model="tiny", messages=MSGS, max_tokens=16, seed=7)
    assert r.model == "tiny" and r.choices[0].message.role == "assistant"
    assert r.choices[0].finish_reason in ("stop", "length")
    assert 1 <= r.usage.completion_tokens <= 16


def test_streaming_equals_non_streaming_for_a_seed(client: openai.OpenAI) -> None:
    whole = client.chat.completions.create(model="tiny", messages=MSGS, max_tokens=24, seed=3)
    parts = list(
        client.chat.completions.create(
            model="tiny", messages=MSGS, max_tokens=24, seed=3, stream=True, stream_options={"include_usage": True}
        )
    )
    text = "".join(p.choices[0].delta.content or "" for p in parts if p.choices)
    assert text == whole.choices[0].message.content
    assert parts[-1].usage.completion_tokens == whole.usage.completion_tokens
    assert [p.choices[0].finish_reason for p in parts if p.choices and p.choices[0].finish_reason] == [
        whole.choices[0].finish_reason
    ]


def test_completions_endpoint_and_stop(client: openai.OpenAI) -> None:
    full = client.completions.create(model="tiny", prompt="the total is", max_tokens=30, temperature=0).choices[0]
    stop = full.text[10:12]
    cut = client.completions.create(model="tiny", prompt="the total is", max_tokens=30, temperature=0, stop=stop)
    assert cut.choices[0].text == full.text[: full.text.index(stop)] and cut.choices[0].finish_reason == "stop"


def test_bad_parameter_is_a_clear_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="logprobs"):
        client.chat.completions.create(model="tiny", messages=MSGS, max_tokens=4, logprobs=True)


def test_policy_watermarks_at_the_logit_level(gw: Gateway, client: openai.OpenAI) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(gw_tiny_dir(gw))
    ring = Keyring(MASTER.encode(), 16)
    key = ring.key("logit_watermark", ring.cohort_of(gw.account))
    body = {"messages": MSGS, "max_tokens": 200, "seed": 21}
    marked = client.chat.completions.create(model="tiny-wm", **body).choices[0].message.content
    plain = client.chat.completions.create(model="tiny", **body).choices[0].message.content
    assert marked != plain
    streamed = "".join(
        p.choices[0].delta.content or ""
        for p in client.chat.completions.create(model="tiny-wm", stream=True, **body)
        if p.choices
    )
    assert streamed == marked  # token streaming continues under a logit defense
    p_marked = detect_text(marked, tok, key, **_det()).p_value
    p_plain = detect_text(plain, tok, key, **_det()).p_value
    print(p_marked, p_plain)
    assert p_marked < 1e-4 < p_plain  # from the text alone (a random model's text re-tokenises lossily)
    client.chat.completions.create(model="remote-wm", messages=MSGS, max_tokens=4)
    deadline = time.monotonic() + 10
    while not any(e["model"] == "remote-wm" for e in gw.events()) and time.monotonic() < deadline:
        time.sleep(0.05)
    by_model: dict[str, set[str | None]] = {}
    for e in gw.events():
        by_model.setdefault(e["model"], set()).add(e["action"])
    assert by_model["tiny-wm"] == {"logit_watermark"}
    assert by_model["remote-wm"] == {"pass"}  # a remote upstream cannot run it: dropped, not claimed


def _det() -> dict[str, Any]:
    return {"gamma": WM["gamma"], "context": WM["context"]}


def gw_tiny_dir(gw: Gateway) -> str:
    import yaml

    return yaml.safe_load(gw.config_path.read_text())["models"][0]["upstream"]["path"]


def test_messages_and_responses_apis_reach_the_local_engine(gw: Gateway, client: openai.OpenAI) -> None:
    """The Anthropic Messages and OpenAI Responses surfaces take the same path to an in-process model:
    greedy decoding gives the same text on each, streamed or not."""
    import anthropic

    greedy = client.chat.completions.create(model="tiny", messages=MSGS, max_tokens=12, temperature=0)
    expected = greedy.choices[0].message.content
    claude = anthropic.Anthropic(base_url=gw.base_url.removesuffix("/v1"), api_key=gw.key, max_retries=0)
    greedy_body = {"temperature": 0}  # older Messages clients send it; this SDK's signature no longer has it
    msg = claude.messages.create(model="tiny", max_tokens=12, messages=MSGS, extra_body=greedy_body)  # type: ignore[arg-type]
    assert msg.content[0].text == expected and msg.model == "tiny"  # type: ignore[union-attr]
    with claude.messages.stream(model="tiny", max_tokens=12, messages=MSGS, extra_body=greedy_body) as stream:  # type: ignore[arg-type]
        assert stream.get_final_message().content[0].text == expected  # type: ignore[union-attr]
    resp = client.responses.create(model="tiny", input=MSGS[0]["content"], max_output_tokens=12, temperature=0)
    assert resp.output_text == expected
