"""Property-based attacks on every route of a real `cuirass serve`: the gateway's adversary is its API user.

Hypothesis sends arbitrary JSON (and not-JSON) bodies, OpenAI-shaped bodies with one field replaced by
anything, deeply nested values and hostile headers, from an ordinary and from a flagged account, and to the
operator API with and without its key. Invariants, checked after every request and at the end:

- never a 5xx, except the upstream-caused 502/504; every error is an OpenAI-style error body;
- no admin route answers anything but 401 without the admin key;
- exactly one event per request to the model routes, each with its own request id;
- the event writer and the detection watcher are alive afterwards, and the next ordinary request is served.

`make test` runs a bounded number of examples; `CUIRASS_FUZZ_EXAMPLES=2000` (as `make bench` does) a long run.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import ADMIN_KEY, Gateway, MockUpstream, gateway_config

EXAMPLES = int(os.environ.get("CUIRASS_FUZZ_EXAMPLES", "80"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=False)
MODEL_ROUTES = ("/v1/chat/completions", "/v1/completions", "/v1/messages", "/v1/responses")
UPSTREAM_CAUSED = {502, 504}

scalars = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=40)
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=16,
)


@st.composite
def nested(draw: st.DrawFn) -> Any:
    """A value nested up to 400 levels deep, as lists, objects or content parts."""
    depth = draw(st.integers(1, 400) | st.sampled_from([64, 65, 253, 254, 255, 256, 300, 1100]))
    leaf: Any = draw(scalars)
    shape = draw(st.sampled_from(["list", "dict", "part"]))
    for _ in range(depth):
        leaf = [leaf] if shape == "list" else {"a": leaf} if shape == "dict" else {"type": "text", "text": leaf}
    return leaf


@st.composite
def anything(draw: st.DrawFn) -> Any:
    """Any JSON value; half the time one nested deep enough to break serialisers (orjson writes 254 levels)."""
    return draw(nested() if draw(st.booleans()) else json_values)


CHAT_FIELDS = [
    "model",
    "messages",
    "stream",
    "stream_options",
    "max_tokens",
    "temperature",
    "top_p",
    "n",
    "stop",
    "seed",
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "tools",
    "tool_choice",
    "user",
    "response_format",
    "presence_penalty",
    "frequency_penalty",
    "max_completion_tokens",
    "metadata",
]
MESSAGE_FIELDS = ["role", "content", "name", "tool_calls", "tool_call_id"]


@st.composite
def chat_bodies(draw: st.DrawFn) -> Any:
    """A valid chat body with one field (top-level or in a message) replaced by anything."""
    body: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "What is 2 + 2?"}], "max_tokens": 4}
    value = draw(anything())
    if draw(st.booleans()):
        body[draw(st.sampled_from(CHAT_FIELDS))] = value
    else:
        body["messages"][0][draw(st.sampled_from(MESSAGE_FIELDS))] = value
    if draw(st.booleans()):
        body["stream"] = True
    return body


@st.composite
def completion_bodies(draw: st.DrawFn) -> Any:
    body: dict[str, Any] = {"model": "m", "prompt": "2 + 2 =", "max_tokens": 4}
    body[
        draw(
            st.sampled_from(
                [
                    "model",
                    "prompt",
                    "max_tokens",
                    "stream",
                    "logprobs",
                    "echo",
                    "suffix",
                    "stop",
                    "n",
                    "logit_bias",
                    "best_of",
                    "user",
                ]
            )
        )
    ] = draw(anything())
    return body


@st.composite
def messages_bodies(draw: st.DrawFn) -> Any:
    """An Anthropic Messages body with one field (top-level, in a message or in a content block) replaced."""
    block: dict[str, Any] = {"type": "text", "text": "What is 2 + 2?"}
    body: dict[str, Any] = {"model": "m", "max_tokens": 4, "messages": [{"role": "user", "content": [block]}]}
    value, where = draw(anything()), draw(st.sampled_from(["top", "message", "block"]))
    if where == "top":
        fields = ["model", "max_tokens", "messages", "system", "stop_sequences", "tools", "tool_choice", "thinking"]
        body[draw(st.sampled_from([*fields, "metadata", "stream", "temperature"]))] = value
    elif where == "message":
        body["messages"][0][draw(st.sampled_from(["role", "content"]))] = value
    else:
        block[draw(st.sampled_from(["type", "text", "source", "tool_use_id", "content", "input", "id", "name"]))] = (
            value
        )
    return body


@st.composite
def responses_bodies(draw: st.DrawFn) -> Any:
    """A Responses body with one field (top-level or in an input item) replaced."""
    item: dict[str, Any] = {"role": "user", "content": [{"type": "input_text", "text": "What is 2 + 2?"}]}
    body: dict[str, Any] = {"model": "m", "max_output_tokens": 4, "input": [item]}
    value = draw(anything())
    if draw(st.booleans()):
        fields = ["model", "input", "instructions", "max_output_tokens", "tools", "tool_choice", "text", "stream"]
        body[draw(st.sampled_from([*fields, "previous_response_id", "reasoning", "temperature"]))] = value
    else:
        item[draw(st.sampled_from(["type", "role", "content", "call_id", "output", "arguments", "name"]))] = value
    return body


BODIES = dict(zip(MODEL_ROUTES, (chat_bodies(), completion_bodies(), messages_bodies(), responses_bodies())))


header_text = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=80
).map(str.strip)


@st.composite
def hostile_headers(draw: st.DrawFn, key: str | None) -> dict[str, str]:
    headers = {}
    auth = draw(st.sampled_from(["good"] * 4 + ["none", "garbage", "empty-bearer"])) if key else "none"
    if auth == "good":
        headers["authorization"] = f"Bearer {key}"
    elif auth == "garbage":
        headers["authorization"] = draw(header_text)
    elif auth == "empty-bearer":
        headers["authorization"] = "Bearer"
    for name in draw(
        st.lists(
            st.sampled_from(
                ["user-agent", "content-type", "x-forwarded-for", "content-encoding", "x-request-id", "accept"]
            ),
            max_size=3,
            unique=True,
        )
    ):
        headers[name] = draw(header_text)
    return headers


class Counter:
    def __init__(self) -> None:
        self.model_requests = 0


@pytest.fixture(scope="module")
def target(mock: MockUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Gateway, str, Counter]]:
    cfg = gateway_config(mock, detection={"poll_interval_s": 0.1})
    gw = Gateway(tmp_path_factory.mktemp("fuzz"), cfg)
    # A second, flagged account: its answers go through every text defense of the default policy.
    gw.cli("accounts", "create", "harvester", "--id", "harvester")
    flagged_key = gw.cli("keys", "create", "harvester", "--json").stdout
    flagged_key = json.loads(flagged_key)["key"]
    r = httpx.put(
        f"http://127.0.0.1:{gw.port}/admin/accounts/harvester/verdict",
        headers=_admin(),
        json={"verdict": "flag", "reason": "fuzz", "by": "pytest"},
    )
    assert r.status_code == 200, r.text
    yield gw, flagged_key, Counter()
    gw.stop()


def _admin() -> dict[str, str]:
    return {"authorization": f"Bearer {ADMIN_KEY}"}


def _check(r: httpx.Response, model_route: bool) -> None:
    assert r.status_code < 500 or (model_route and r.status_code in UPSTREAM_CAUSED), (r.status_code, r.text[:500])
    if r.status_code >= 400:
        err = r.json()["error"]
        assert isinstance(err["message"], str) and err["message"]
        assert "Traceback" not in err["message"]


def _encode(body: Any) -> bytes:
    """JSON as a client would send it, also past orjson's limits (deep nesting, integers beyond 64 bits)."""
    try:
        return orjson.dumps(body)
    except TypeError:
        return json.dumps(body).encode()


def _latin1(headers: dict[str, str]) -> dict[str, bytes]:
    return {k: v.encode("latin-1") for k, v in headers.items()}


def _send(gw: Gateway, counter: Counter, path: str, content: bytes, headers: dict[str, str]) -> httpx.Response:
    with httpx.Client(base_url=f"http://127.0.0.1:{gw.port}", timeout=30) as client:
        r = client.post(path, content=content, headers=_latin1(headers))
        counter.model_requests += path in MODEL_ROUTES
        if "text/event-stream" in r.headers.get("content-type", ""):
            assert r.text.rstrip().endswith("data: [DONE]") or '"error"' in r.text
        return r


@FUZZ
@given(data=st.data())
def test_model_routes_survive_any_body(target: tuple[Gateway, str, Counter], data: st.DataObject) -> None:
    gw, flagged_key, counter = target
    path = data.draw(st.sampled_from(MODEL_ROUTES))
    body = data.draw(BODIES[path])
    content = _encode(body)
    key = data.draw(st.sampled_from([gw.key, flagged_key]))
    headers = {**data.draw(hostile_headers(key)), "content-type": "application/json"}
    _check(_send(gw, counter, path, content, headers), model_route=True)


@FUZZ
@given(data=st.data())
def test_model_routes_survive_any_bytes(target: tuple[Gateway, str, Counter], data: st.DataObject) -> None:
    gw, flagged_key, counter = target
    path = data.draw(st.sampled_from(MODEL_ROUTES))
    raw = data.draw(st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode()))
    headers = data.draw(hostile_headers(data.draw(st.sampled_from([gw.key, flagged_key]))))
    _check(_send(gw, counter, path, raw, headers), model_route=True)


ADMIN_ROUTES = [
    ("GET", "/admin/accounts"),
    ("POST", "/admin/accounts"),
    ("GET", "/admin/accounts/{id}"),
    ("POST", "/admin/accounts/{id}/keys"),
    ("PUT", "/admin/accounts/{id}/verdict"),
    ("GET", "/admin/campaigns"),
    ("DELETE", "/admin/keys/{id}"),
    ("GET", "/admin/events"),
    ("GET", "/admin/accounts/{id}/activity"),
    ("GET", "/admin/campaigns/{id}"),
    ("PUT", "/admin/campaigns/{id}/verdict"),
    ("GET", "/admin/series"),
]


@FUZZ
@given(data=st.data())
def test_admin_routes_need_the_key_and_survive_any_body(
    target: tuple[Gateway, str, Counter], data: st.DataObject
) -> None:
    gw, _, _ = target
    method, template = data.draw(st.sampled_from(ADMIN_ROUTES))
    ident = data.draw(
        st.text(
            st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="/?#%"), min_size=1, max_size=20
        )
    )
    path = template.replace("{id}", ident)
    params = data.draw(
        st.dictionaries(
            st.sampled_from(["limit", "offset", "since", "account", "flagged", "prompts", "bucket"]),
            st.text(max_size=30) | st.integers().map(str),
            max_size=3,
        )
    )
    body = data.draw(json_values)
    with_key = data.draw(st.booleans())
    headers = _admin() if with_key else data.draw(hostile_headers(None))

    with httpx.Client(base_url=f"http://127.0.0.1:{gw.port}", timeout=30) as client:
        r = client.request(method, path, params=params, content=_encode(body), headers=_latin1(headers))
    if not with_key:
        assert r.status_code in (401, 404, 405), (method, path, r.status_code, r.text[:300])
        assert r.status_code != 200
    _check(r, model_route=False)


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def test_after_the_attack_every_request_has_one_event_and_every_stage_lives(
    target: tuple[Gateway, str, Counter],
) -> None:
    """Runs after the fuzzers in this module (pytest keeps file order)."""
    gw, _, counter = target
    assert counter.model_requests > 0
    c = openai.OpenAI(base_url=gw.base_url, api_key=gw.key, max_retries=0)
    reply = c.chat.completions.create(model="m", messages=[{"role": "user", "content": "Say hello."}], max_tokens=5)
    assert reply.choices[0].message.content
    expected = counter.model_requests + 1
    deadline = time.monotonic() + 20
    while True:
        with sqlite3.connect(gw.db_path) as conn:
            n, distinct = conn.execute("SELECT count(*), count(DISTINCT request_id) FROM events").fetchone()
        if n >= expected or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert n == distinct == expected
    ready = httpx.get(f"http://127.0.0.1:{gw.port}/health/readiness")
    assert ready.status_code == 200, ready.text
    assert gw.proc.poll() is None
    watchers = [p for p in _children(gw.proc.pid) if b"detect\x00watch" in Path(f"/proc/{p}/cmdline").read_bytes()]
    assert watchers, "the detection watcher is not running"
