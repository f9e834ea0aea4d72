"""Bad input and faults: the right status, an OpenAI error body, never a traceback, one event each."""

from __future__ import annotations

import time

import httpx
import openai
import pytest

from tests.conftest import Gateway

MESSAGES = [{"role": "user", "content": "hi"}]


def post(
    gw: Gateway,
    body: bytes | dict,
    key: str | None = "default",
    path: str = "/chat/completions",
    timeout: float = 15,
    **headers: str,
) -> httpx.Response:
    h = {"content-type": "application/json", **headers}
    if key is not None:
        h["authorization"] = f"Bearer {gw.key if key == 'default' else key}"
    if isinstance(body, dict):
        return httpx.post(gw.base_url + path, json=body, headers=h, timeout=timeout)
    return httpx.post(gw.base_url + path, content=body, headers=h, timeout=timeout)


def assert_openai_error(r: httpx.Response, status: int, code: str | None = None, param: str | None = None) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert "Traceback" not in err["message"]
    if code is not None:
        assert err["code"] == code
    if param is not None:
        assert err["param"] == param
    return err


@pytest.mark.parametrize(
    "body, code, param",
    [
        (b"{not json", "invalid_json", None),
        (b"", "invalid_json", None),
        (b"[1, 2]", "invalid_request", None),
        ({"messages": MESSAGES}, "missing_required_parameter", "model"),
        ({"model": "m"}, "missing_required_parameter", "messages"),
        ({"model": "m", "messages": "hi"}, "invalid_type", "messages"),
        ({"model": "m", "messages": [{"content": "x"}]}, "invalid_type", "messages[0].role"),
        ({"model": "m", "messages": MESSAGES, "max_tokens": "10"}, "invalid_type", "max_tokens"),
        ({"model": "m", "messages": MESSAGES, "temperature": 7}, "invalid_type", "temperature"),
        ({"model": "m", "messages": MESSAGES, "stream": "yes"}, "invalid_type", "stream"),
        ({"model": 5, "messages": MESSAGES}, "invalid_type", "model"),
    ],
)
def test_malformed_requests_get_400(gateway: Gateway, body: bytes | dict, code: str, param: str | None) -> None:
    assert_openai_error(post(gateway, body), 400, code, param)


def test_completions_prompt_type_checked(gateway: Gateway) -> None:
    assert_openai_error(
        post(gateway, {"model": "m", "prompt": {"x": 1}}, path="/completions"), 400, "invalid_type", "prompt"
    )


@pytest.mark.parametrize(
    "key, code",
    [
        (None, "missing_api_key"),
        ("sk-nope", "invalid_api_key"),
        ("sk-cui-0123456789ab_forged-secret-value", "invalid_api_key"),
    ],
)
def test_bad_keys_get_401(gateway: Gateway, key: str | None, code: str) -> None:
    assert_openai_error(post(gateway, {"model": "m", "messages": MESSAGES}, key=key), 401, code)


def test_revoked_key_gets_401(gateway: Gateway) -> None:
    key_id = gateway.key.removeprefix("sk-cui-")[:12]
    extra = gateway.cli("keys", "create", "tester", "--json").stdout
    import json

    new = json.loads(extra)
    assert post(gateway, {"model": "m", "messages": MESSAGES}, key=new["key"]).status_code == 200
    gateway.cli("keys", "revoke", new["key_id"])
    time.sleep(0.6)  # auth.cache_ttl_s is 0.5 in the test config
    assert_openai_error(post(gateway, {"model": "m", "messages": MESSAGES}, key=new["key"]), 401, "invalid_api_key")
    assert key_id  # the fixture's own key is untouched
    assert post(gateway, {"model": "m", "messages": MESSAGES}).status_code == 200


def test_unknown_model_gets_404(gateway: Gateway) -> None:
    with pytest.raises(openai.NotFoundError) as err:
        openai.OpenAI(base_url=gateway.base_url, api_key=gateway.key, max_retries=0).chat.completions.create(
            model="gpt-9", messages=MESSAGES
        )
    assert err.value.code == "model_not_found"


def test_oversized_body_gets_413(gateway: Gateway) -> None:
    big = {"model": "m", "messages": [{"role": "user", "content": "x" * 70_000}]}
    assert_openai_error(post(gateway, big), 413, "request_too_large")


def test_oversized_chunked_body_gets_413(gateway: Gateway) -> None:
    def gen():  # no content-length: the limit must hold while streaming the body in
        yield b'{"model": "m", "messages": [{"role": "user", "content": "'
        for _ in range(100):
            yield b"x" * 1000
        yield b'"}]}'

    r = httpx.post(
        gateway.base_url + "/chat/completions",
        content=gen(),
        timeout=10,
        headers={"authorization": f"Bearer {gateway.key}"},
    )
    assert_openai_error(r, 413, "request_too_large")


def test_upstream_500_gets_502(gateway: Gateway) -> None:
    r = post(gateway, {"model": "m", "messages": MESSAGES, "mock": {"fault": "500"}})
    assert_openai_error(r, 502, "upstream_error")


def test_upstream_4xx_passes_through(gateway: Gateway) -> None:
    r = post(gateway, {"model": "m", "messages": MESSAGES, "mock": {"fault": "400"}})
    assert_openai_error(r, 400, "upstream_rejected")


def test_upstream_reset_gets_502(gateway: Gateway) -> None:
    assert_openai_error(post(gateway, {"model": "m", "messages": MESSAGES, "mock": {"fault": "reset"}}), 502)


def test_upstream_down_gets_502(gateway: Gateway) -> None:
    assert_openai_error(post(gateway, {"model": "down", "messages": MESSAGES}), 502, "upstream_unavailable")
    assert_openai_error(
        post(gateway, {"model": "down", "messages": MESSAGES, "stream": True}), 502, "upstream_unavailable"
    )


def test_upstream_timeout_gets_504(gateway: Gateway) -> None:
    t0 = time.monotonic()
    r = post(gateway, {"model": "slow", "messages": MESSAGES, "mock": {"fault": "timeout"}})
    assert_openai_error(r, 504, "upstream_timeout")
    assert time.monotonic() - t0 < 10  # read_timeout_s is 1 s for "slow": no hung connection


def test_stream_cut_midway_gets_error_event_then_end(gateway: Gateway) -> None:
    c = openai.OpenAI(base_url=gateway.base_url, api_key=gateway.key, max_retries=0)
    got = []
    with pytest.raises(openai.APIError) as err:
        for ch in c.chat.completions.create(
            model="m", messages=MESSAGES, max_tokens=20, stream=True, extra_body={"mock": {"fault": "cut"}}
        ):
            got.append(ch)  # noqa: PERF402 - keeps the chunks that came before the error
    assert "before completion" in str(err.value.message)
    assert got  # the part before the cut was delivered


def test_unknown_path_and_method(gateway: Gateway) -> None:
    assert_openai_error(httpx.get(gateway.base_url + "/nope"), 404)
    assert_openai_error(httpx.get(gateway.base_url + "/chat/completions"), 405)


def test_rate_limits_answer_429_with_headers(make_gateway) -> None:  # type: ignore[no-untyped-def]
    gw = make_gateway(key_args=("--rpm", "3"))
    ok = [post(gw, {"model": "m", "messages": MESSAGES}) for _ in range(3)]
    assert all(r.status_code == 200 for r in ok)
    assert ok[0].headers["x-ratelimit-limit-requests"] == "3"
    assert int(ok[-1].headers["x-ratelimit-remaining-requests"]) == 0
    r = post(gw, {"model": "m", "messages": MESSAGES})
    err = assert_openai_error(r, 429, "rate_limit_exceeded")
    assert int(r.headers["retry-after"]) >= 1
    assert "x-ratelimit-reset-requests" in r.headers
    assert "requests" in err["message"]
    # Every request, refused or not, left exactly one event.
    rows = gw.events(expect=4)
    assert [row["status"] for row in rows] == [200, 200, 200, 429]


def test_token_limit(make_gateway) -> None:  # type: ignore[no-untyped-def]
    gw = make_gateway(key_args=("--tpm", "40"))
    assert post(gw, {"model": "m", "messages": MESSAGES, "max_tokens": 30}).status_code == 200
    assert post(gw, {"model": "m", "messages": MESSAGES, "max_tokens": 30}).status_code == 200  # balance was > 0
    r = post(gw, {"model": "m", "messages": MESSAGES, "max_tokens": 30})
    assert_openai_error(r, 429, "rate_limit_exceeded")
    assert "tokens" in r.json()["error"]["message"]
