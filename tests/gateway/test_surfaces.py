"""Issue 22, item 1: the Messages API (/v1/messages) and the Responses API (/v1/responses), spoken by the
official `anthropic` and `openai` packages to a real `cuirass serve`, translated to an OpenAI-compatible
upstream (the mock, which returns reasoning as `reasoning_content` like vLLM and calls tools when told to).

Each surface must give the same answer as chat completions for the same request, streaming or not; the
same accounts, errors, events and defenses apply: a flagged account gets the defended text on every surface.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest

from tests.conftest import ADMIN_KEY, Gateway, MockUpstream, gateway_config

QUESTION = "Tom has 17 apples and buys 25 more. How many apples does he have?"
SYSTEM = "Answer briefly."
LONG = 64  # tokens: enough text for the text defenses to have something to mark
TOOL = {"name": "lookup", "description": "Look a fact up.", "input_schema": {"type": "object", "properties": {}}}


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Gateway, str]]:
    upstream = MockUpstream("--reasoning")
    gw = Gateway(tmp_path_factory.mktemp("surfaces"), gateway_config(upstream))
    gw.cli("accounts", "create", "harvester", "--id", "harvester")
    flagged_key = json.loads(gw.cli("keys", "create", "harvester", "--json").stdout)["key"]
    r = httpx.put(
        f"http://127.0.0.1:{gw.port}/admin/accounts/harvester/verdict",
        headers={"authorization": f"Bearer {ADMIN_KEY}"},
        json={"verdict": "flag", "reason": "surfaces test", "by": "pytest"},
    )
    assert r.status_code == 200, r.text
    yield gw, flagged_key
    gw.stop()
    upstream.stop()


def _root(gw: Gateway) -> str:
    return f"http://127.0.0.1:{gw.port}"


def _claude(gw: Gateway, key: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=_root(gw), api_key=key, max_retries=0)


def _oai(gw: Gateway, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0)


def _chat(gw: Gateway, key: str, max_tokens: int = 8) -> Any:
    """The same request through chat completions: what the other surfaces must say."""
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION}]
    return _oai(gw, key).chat.completions.create(model="m", messages=messages, max_tokens=max_tokens)  # type: ignore[arg-type]


def _events(gw: Gateway, *request_ids: str) -> list[dict[str, Any]]:
    """The events of these requests, in this order, once the writer has stored them all."""
    for _ in range(100):
        rows = {e["request_id"]: e for e in gw.events()}
        if all(r in rows for r in request_ids):
            return [rows[r] for r in request_ids]
        time.sleep(0.1)
    raise AssertionError("events missing")


def test_messages_answer_matches_chat_and_leaves_one_event(env: tuple[Gateway, str]) -> None:
    gw, _ = env
    reference = _chat(gw, gw.key).choices[0].message
    client = _claude(gw, gw.key)
    raw = client.messages.with_raw_response.create(
        model="m", max_tokens=8, system=SYSTEM, messages=[{"role": "user", "content": QUESTION}]
    )
    plain = raw.parse()
    assert [b.type for b in plain.content] == ["text"]  # no thinking unless asked for
    assert plain.content[0].text == reference.content
    assert plain.role == "assistant" and plain.stop_reason == "max_tokens" and plain.usage.output_tokens == 8
    raw2 = client.messages.with_raw_response.create(
        model="m",
        max_tokens=8,
        system=[{"type": "text", "text": SYSTEM}],
        messages=[{"role": "user", "content": [{"type": "text", "text": QUESTION}]}],
        thinking={"type": "enabled", "budget_tokens": 1024},
    )
    thinking = raw2.parse()
    assert [b.type for b in thinking.content] == ["thinking", "text"]
    assert thinking.content[0].thinking == reference.reasoning_content  # type: ignore[union-attr]
    assert thinking.content[1].text == reference.content  # type: ignore[union-attr]
    mine = _events(gw, raw.headers["x-request-id"], raw2.headers["x-request-id"])
    assert [e["endpoint"] for e in mine] == ["/v1/messages"] * 2 and {e["status"] for e in mine} == {200}
    assert mine[0]["account"] == "tester" and mine[0]["messages"][0] == {"role": "system", "content": SYSTEM}
    assert mine[1]["response"]["content"] == reference.content


def test_messages_stream_gives_the_same_message(env: tuple[Gateway, str]) -> None:
    gw, _ = env
    reference = _chat(gw, gw.key).choices[0].message
    with _claude(gw, gw.key).messages.stream(
        model="m",
        max_tokens=8,
        system=SYSTEM,
        messages=[{"role": "user", "content": QUESTION}],
        thinking={"type": "enabled", "budget_tokens": 1024},
    ) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_message()
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop" and "content_block_delta" in kinds
    assert [b.type for b in final.content] == ["thinking", "text"]
    assert final.content[0].thinking == reference.reasoning_content  # type: ignore[union-attr]
    assert final.content[1].text == reference.content  # type: ignore[union-attr]
    assert final.stop_reason == "end_turn" and final.usage.output_tokens == 8


@pytest.mark.parametrize("stream", [False, True])
def test_messages_tool_use_round_trip(env: tuple[Gateway, str], stream: bool) -> None:
    gw, _ = env
    client = _claude(gw, gw.key)
    ask: dict[str, Any] = {
        "model": "m",
        "max_tokens": 16,
        "tools": [TOOL],
        "tool_choice": {"type": "tool", "name": "lookup"},
        "messages": [{"role": "user", "content": QUESTION}],
    }
    if stream:
        with client.messages.stream(**ask) as s:
            msg = s.get_final_message()
    else:
        msg = client.messages.create(**ask)
    assert msg.stop_reason == "tool_use"
    (call,) = [b for b in msg.content if b.type == "tool_use"]
    assert call.name == "lookup" and call.input == {"words": len(QUESTION.split())}
    raw = client.messages.with_raw_response.create(
        model="m",
        max_tokens=8,
        tools=[TOOL],  # type: ignore[list-item]
        messages=[
            {"role": "user", "content": QUESTION},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": call.id, "name": call.name, "input": call.input}],
            },
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "42"}]},
        ],
    )
    answer = raw.parse()
    assert answer.content[0].type == "text" and answer.content[0].text
    (last,) = _events(gw, raw.headers["x-request-id"])
    assert [m["role"] for m in last["messages"]] == ["user", "assistant", "tool"]
    assert last["messages"][1]["tool_calls"][0]["id"] == call.id


def test_messages_errors_in_anthropic_shape(env: tuple[Gateway, str]) -> None:
    gw, _ = env
    with pytest.raises(anthropic.AuthenticationError) as no_key:
        _claude(gw, "sk-cui-wrong").messages.create(
            model="m", max_tokens=8, messages=[{"role": "user", "content": "hi"}]
        )
    assert no_key.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]
    with pytest.raises(anthropic.NotFoundError) as no_model:
        _claude(gw, gw.key).messages.create(model="nope", max_tokens=8, messages=[{"role": "user", "content": "hi"}])
    raw = httpx.post(
        _root(gw) + "/v1/messages",
        headers={"x-api-key": gw.key, "anthropic-version": "2023-06-01"},
        json={"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}], "max_tokens": 8},
    )
    assert raw.status_code == 400
    assert raw.json()["type"] == "error" and raw.json()["error"]["type"] == "invalid_request_error"
    assert "messages[0].content[0]" in raw.json()["error"]["message"]
    missing = httpx.post(_root(gw) + "/v1/messages", headers={"x-api-key": gw.key}, json={"model": "m", "messages": []})
    assert missing.status_code == 400 and "max_tokens" in missing.json()["error"]["message"]
    ids = [e.response.headers["x-request-id"] for e in (no_key.value, no_model.value)]
    rows = _events(gw, *ids, raw.headers["x-request-id"], missing.headers["x-request-id"])
    assert [e["status"] for e in rows] == [401, 404, 400, 400]
    assert {e["endpoint"] for e in rows} == {"/v1/messages"}


def test_responses_answer_and_stream_match_chat(env: tuple[Gateway, str]) -> None:
    gw, _ = env
    reference = _chat(gw, gw.key).choices[0].message
    client = _oai(gw, gw.key)
    raw = client.responses.with_raw_response.create(model="m", instructions=SYSTEM, input=QUESTION, max_output_tokens=8)
    whole = raw.parse()
    assert whole.output_text == reference.content
    assert [item.type for item in whole.output] == ["reasoning", "message"]
    assert whole.output[0].content[0].text == reference.reasoning_content  # type: ignore[union-attr,index]
    assert whole.status == "incomplete" and whole.incomplete_details.reason == "max_output_tokens"  # type: ignore[union-attr]
    assert whole.usage is not None and whole.usage.output_tokens == 8
    items = [{"role": "user", "content": [{"type": "input_text", "text": QUESTION}]}]
    with client.responses.stream(model="m", instructions=SYSTEM, input=items, max_output_tokens=8) as stream:  # type: ignore[arg-type]
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert final.output_text == reference.content
    assert kinds[:2] == ["response.created", "response.in_progress"] and kinds[-1] == "response.completed"
    assert "response.output_text.delta" in kinds and "response.reasoning_text.delta" in kinds
    assert final.output[0].content[0].text == reference.reasoning_content  # type: ignore[union-attr,index]
    (row,) = _events(gw, raw.headers["x-request-id"])
    assert row["endpoint"] == "/v1/responses" and row["status"] == 200
    assert row["messages"] == [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": QUESTION},
    ]


def test_responses_function_call_and_errors(env: tuple[Gateway, str]) -> None:
    gw, _ = env
    client = _oai(gw, gw.key)
    tool = {"type": "function", "name": "lookup", "parameters": {"type": "object", "properties": {}}}
    got = client.responses.create(model="m", input=QUESTION, tools=[tool], tool_choice="required")  # type: ignore[list-item]
    (call,) = [item for item in got.output if item.type == "function_call"]
    assert call.name == "lookup" and json.loads(call.arguments) == {"words": len(QUESTION.split())}
    follow = client.responses.create(
        model="m",
        max_output_tokens=4,
        input=[
            {"role": "user", "content": QUESTION},
            {"type": "function_call", "call_id": call.call_id, "name": "lookup", "arguments": call.arguments},
            {"type": "function_call_output", "call_id": call.call_id, "output": "42"},
        ],
    )
    assert follow.output_text
    with pytest.raises(openai.BadRequestError) as stateful:
        client.responses.create(model="m", input="hi", previous_response_id="resp_123")
    assert "no conversation state" in stateful.value.message
    with pytest.raises(openai.AuthenticationError):
        _oai(gw, "sk-cui-wrong").responses.create(model="m", input="hi")


def test_flagged_account_gets_the_defended_answer_on_every_surface(env: tuple[Gateway, str]) -> None:
    """The default policy strips the reasoning for a flagged account and rewrites its text the same way
    whichever surface it asks through; an ordinary account's answer is the upstream's."""
    gw, flagged = env
    chat = _chat(gw, flagged, LONG).choices[0].message
    plain = _chat(gw, gw.key, LONG).choices[0].message
    assert (
        getattr(chat, "reasoning_content", None) is None and plain.reasoning_content
    )  # stripped for the flagged account only
    assert chat.content != plain.content  # defended text (watermark, canary, perturbation)
    msg = _claude(gw, flagged).messages.create(
        model="m",
        max_tokens=LONG,
        system=SYSTEM,
        messages=[{"role": "user", "content": QUESTION}],
        thinking={"type": "enabled", "budget_tokens": 1024},
    )
    assert [b.type for b in msg.content] == ["text"] and msg.content[0].text == chat.content  # type: ignore[union-attr]
    resp = _oai(gw, flagged).responses.create(model="m", instructions=SYSTEM, input=QUESTION, max_output_tokens=LONG)
    assert [i.type for i in resp.output] == ["message"] and resp.output_text == chat.content
    with _claude(gw, flagged).messages.stream(
        model="m", max_tokens=LONG, system=SYSTEM, messages=[{"role": "user", "content": QUESTION}]
    ) as stream:
        assert stream.get_final_message().content[0].text == chat.content  # type: ignore[union-attr]
    time.sleep(0.5)  # the writer flushes every 0.05 s
    rows = [e for e in gw.events() if e["account"] == "harvester"][-4:]
    assert [e["endpoint"] for e in rows] == ["/v1/chat/completions", "/v1/messages", "/v1/responses", "/v1/messages"]
    assert all(e["actions"] and "strip_reasoning" in e["actions"] for e in rows)
