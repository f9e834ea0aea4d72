"""The proxy as an OpenAI client sees it: content equal to the upstream's, OpenAI's SSE framing exactly."""

from __future__ import annotations

import asyncio

import httpx
import openai
import orjson
import pytest

from tests.conftest import Gateway, MockUpstream

MESSAGES = [{"role": "user", "content": "Natalia sold clips to 48 of her friends. How many in all?"}]


def client(gw: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key=gw.key, max_retries=0)


def direct(mock: MockUpstream) -> openai.OpenAI:
    return openai.OpenAI(base_url=mock.base_url, api_key="unused", max_retries=0)


def test_chat_content_is_the_upstreams_byte_for_byte(gateway: Gateway, mock: MockUpstream) -> None:
    via = client(gateway).chat.completions.create(model="m", messages=MESSAGES, max_tokens=20)
    ref = direct(mock).chat.completions.create(model="mock-model", messages=MESSAGES, max_tokens=20)
    assert via.choices[0].message.content == ref.choices[0].message.content
    assert via.choices[0].finish_reason == ref.choices[0].finish_reason
    assert via.usage == ref.usage
    assert via.model == "m"  # the public name, never the upstream's served name


def test_streaming_matches_non_streaming_and_openai_framing(gateway: Gateway) -> None:
    whole = client(gateway).chat.completions.create(model="m", messages=MESSAGES, max_tokens=16)
    chunks = list(client(gateway).chat.completions.create(model="m", messages=MESSAGES, max_tokens=16, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == whole.choices[0].message.content
    assert len({c.id for c in chunks}) == 1
    assert {c.object for c in chunks} == {"chat.completion.chunk"}
    assert {c.model for c in chunks} == {"m"}
    assert all(c.usage is None for c in chunks)  # no usage chunk unless asked for
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_stream_usage_chunk_when_asked(gateway: Gateway) -> None:
    chunks = list(
        client(gateway).chat.completions.create(
            model="m", messages=MESSAGES, max_tokens=8, stream=True, stream_options={"include_usage": True}
        )
    )
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None and last.usage.completion_tokens == 8
    assert all(c.usage is None for c in chunks[:-1])


def test_raw_sse_framing(gateway: Gateway) -> None:
    body = {"model": "m", "messages": MESSAGES, "max_tokens": 4, "stream": True}
    r = httpx.post(
        gateway.base_url + "/chat/completions",
        json=body,
        headers={"authorization": f"Bearer {gateway.key}"},
        timeout=10,
    )
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    assert r.headers["x-request-id"]
    events = r.text.split("\n\n")
    assert events[-1] == "" and events[-2] == "data: [DONE]"
    payloads = [orjson.loads(e.removeprefix("data: ")) for e in events[:-2]]
    assert all(e.startswith("data: ") for e in events[:-1])
    assert payloads[0]["choices"][0]["delta"]["role"] == "assistant"


def test_completions_endpoint_streaming_and_not(gateway: Gateway, mock: MockUpstream) -> None:
    c = client(gateway)
    whole = c.completions.create(model="m", prompt="Once upon a time", max_tokens=12)
    ref = direct(mock).completions.create(model="mock-model", prompt="Once upon a time", max_tokens=12)
    assert whole.choices[0].text == ref.choices[0].text
    streamed = "".join(
        ch.choices[0].text
        for ch in c.completions.create(model="m", prompt="Once upon a time", max_tokens=12, stream=True)
        if ch.choices
    )
    assert streamed == whole.choices[0].text


def test_async_client_streaming_and_not(gateway: Gateway) -> None:
    async def run() -> tuple[str, str]:
        ac = openai.AsyncOpenAI(base_url=gateway.base_url, api_key=gateway.key, max_retries=0)
        whole = await ac.chat.completions.create(model="m", messages=MESSAGES, max_tokens=10)
        parts = []
        async for ch in await ac.chat.completions.create(model="m", messages=MESSAGES, max_tokens=10, stream=True):
            if ch.choices and ch.choices[0].delta.content:
                parts.append(ch.choices[0].delta.content)
        await ac.close()
        return whole.choices[0].message.content or "", "".join(parts)

    whole, streamed = asyncio.run(run())
    assert whole and whole == streamed


def test_concurrent_async_requests_each_get_their_own_answer(gateway: Gateway, mock: MockUpstream) -> None:
    prompts = [f"question number {i}" for i in range(20)]

    async def run() -> list[str]:
        ac = openai.AsyncOpenAI(base_url=gateway.base_url, api_key=gateway.key, max_retries=0)
        rs = await asyncio.gather(
            *[
                ac.chat.completions.create(model="m", messages=[{"role": "user", "content": p}], max_tokens=6)
                for p in prompts
            ]
        )
        await ac.close()
        return [r.choices[0].message.content or "" for r in rs]

    got = asyncio.run(run())
    ref = direct(mock)
    want = [
        ref.chat.completions.create(model="mock-model", messages=[{"role": "user", "content": p}], max_tokens=6)
        .choices[0]
        .message.content
        for p in prompts
    ]
    assert got == want


def test_unknown_fields_pass_through_to_the_upstream(gateway: Gateway) -> None:
    # The mock acts on its own extra field; if the gateway dropped it, the request would succeed.
    with pytest.raises(openai.APIStatusError) as err:
        client(gateway).chat.completions.create(model="m", messages=MESSAGES, extra_body={"mock": {"fault": "500"}})
    assert err.value.status_code == 502


def test_models_lists_public_names(gateway: Gateway) -> None:
    names = sorted(m.id for m in client(gateway).models.list())
    assert names == ["down", "m", "slow"]


def test_multi_part_content_and_reasoning_fields_survive(gateway: Gateway) -> None:
    r = client(gateway).chat.completions.create(
        model="m",
        max_tokens=5,
        messages=[
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "hello"}]},
        ],
    )
    assert r.choices[0].message.content
