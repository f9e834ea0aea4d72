"""Hardening at the edge (issue 16): what a hostile API user sends is refused cleanly, and the gateway goes on.

Each test is a regression test for one finding: it failed on the code before the fix.
"""

from __future__ import annotations

import json
import os
import select
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml

from tests.conftest import (
    ADMIN_KEY,
    Gateway,
    MockUpstream,
    free_port,
    gateway_config,
    wait_http,
)
from tests.gateway.test_errors import MESSAGES, assert_openai_error, post

ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}


def nested(levels: int) -> Any:
    value: Any = "leaf"
    for _ in range(levels):
        value = [value]
    return value


def served_and_logged(gw: Gateway) -> None:
    """The next ordinary request is answered, and its event reaches the store (the writer is alive)."""
    c = openai.OpenAI(base_url=gw.base_url, api_key=gw.key, max_retries=0)
    marker = f"still-alive-{time.monotonic_ns()}"
    assert c.chat.completions.create(model="m", messages=[{"role": "user", "content": marker}]).choices
    deadline = time.monotonic() + 10
    while not any(marker in json.dumps(r["messages"]) for r in gw.events()):
        assert time.monotonic() < deadline, "the ordinary request's event was never written"
        time.sleep(0.05)


# --- finding 1 and 2: validate at the edge -----------------------------------------------------------


def test_deeply_nested_body_is_a_400_naming_the_field(gateway: Gateway) -> None:
    r = post(gateway, {"model": "m", "messages": MESSAGES, "metadata_blob": nested(300)})
    err = assert_openai_error(r, 400, "nesting_too_deep", "metadata_blob")
    assert "64" in err["message"]
    # Within the bound, an unknown field still passes through to the upstream untouched.
    assert post(gateway, {"model": "m", "messages": MESSAGES, "extra": nested(40)}).status_code == 200
    served_and_logged(gateway)


def part(p: dict[str, Any]) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": [p]}]}


@pytest.mark.parametrize(
    "body, param",
    [
        (part({"type": "text", "text": 5}), "messages[0].content[0].text"),
        (part({"type": "text"}), "messages[0].content[0].text"),
        (part({"type": 3, "text": "x"}), "messages[0].content[0].type"),
        (part({"type": "video_url", "text": ["x"]}), "messages[0].content[0].text"),  # unknown part type, read text
        (part({"type": "image_url", "image_url": "http://x/y.png"}), "messages[0].content[0].image_url"),
        (part({"type": "image_url", "image_url": {"url": 1}}), "messages[0].content[0].image_url.url"),
        (part({"type": "input_audio", "input_audio": {"data": "AAAA"}}), "messages[0].content[0].input_audio.format"),
        ({"model": "m", "messages": [{"role": "user", "content": ["hi"]}]}, "messages[0].content[0]"),
        ({"model": "m", "messages": [{"role": "wizard", "content": "hi"}]}, "messages[0].role"),
        ({"model": "m", "messages": [{"role": "user", "content": "hi", "name": 7}]}, "messages[0].name"),
        ({"model": "m", "messages": [{"role": "user"}]}, "messages[0].content"),
        ({"model": "m", "messages": [*MESSAGES, {"role": "tool", "content": "ok"}]}, "messages[1].tool_call_id"),
        (
            {"model": "m", "messages": [*MESSAGES, {"role": "tool", "content": "ok", "tool_call_id": 1}]},
            "messages[1].tool_call_id",
        ),
        (
            {
                "model": "m",
                "messages": [
                    *MESSAGES,
                    {
                        "role": "assistant",
                        "tool_calls": [
                            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": {"q": 1}}}
                        ],
                    },
                ],
            },
            "messages[1].tool_calls[0].function.arguments",
        ),
        (
            {"model": "m", "messages": [*MESSAGES, {"role": "assistant", "tool_calls": {"id": "c1"}}]},
            "messages[1].tool_calls",
        ),
        (
            {"model": "m", "messages": MESSAGES, "tools": [{"type": "function", "function": {"parameters": {}}}]},
            "tools[0].function.name",
        ),
        ({"model": "m", "messages": MESSAGES, "logit_bias": {"hello": 5}}, "logit_bias"),
        ({"model": "m", "messages": MESSAGES, "logit_bias": {"50256": 1e9}}, "logit_bias.50256"),
        ({"model": "m", "messages": MESSAGES, "stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"model": "m", "messages": MESSAGES, "stop": [1]}, "stop[0]"),
        ({"model": "m", "messages": MESSAGES, "max_tokens": 2**70}, "max_tokens"),
        ({"model": "m", "messages": MESSAGES, "seed": 2**64}, "seed"),
        ({"model": "m", "messages": MESSAGES, "n": 0}, "n"),
        (
            {"model": "m", "messages": MESSAGES, "stream_options": {"include_usage": "yes"}},
            "stream_options.include_usage",
        ),
    ],
)
def test_every_field_read_is_type_checked(gateway: Gateway, body: dict[str, Any], param: str) -> None:
    assert_openai_error(post(gateway, body), 400, param=param)
    assert_openai_error(post(gateway, dict(body, stream=True)), 400, param=param)


def test_completions_prompt_token_ids_are_checked(gateway: Gateway) -> None:
    r = post(gateway, {"model": "m", "prompt": [1, 2, -3]}, path="/completions")
    assert_openai_error(r, 400, "invalid_type", "prompt[2]")
    r = post(gateway, {"model": "m", "prompt": [[1, 2], ["x"]]}, path="/completions")
    assert_openai_error(r, 400, "invalid_type", "prompt[1][0]")


def test_a_full_featured_request_passes(gateway: Gateway) -> None:
    """No false alarms: every shape of the OpenAI schema we check, used correctly, is served."""
    body = {
        "model": "m",
        "max_tokens": 8,
        "temperature": None,
        "top_p": 1,
        "n": 1,
        "stop": ["\n\n"],
        "seed": -1,
        "logit_bias": {"50256": -100, "11": 2.5},
        "user": "u1",
        "logprobs": False,
        "parallel_tool_calls": True,
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "search",
                    "description": "web search",
                    "parameters": {"type": "object", "properties": {}},
                },
            }
        ],
        "tool_choice": "auto",
        "response_format": {"type": "text"},
        "some_vendor_extension": {"x": [1, 2]},
        "messages": [
            {"role": "system", "content": "Be brief."},
            {
                "role": "user",
                "name": "ann",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"}},
                    {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "search", "arguments": '{"q": "x"}'}}
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": [{"type": "text", "text": "result"}]},
            {"role": "assistant", "content": [{"type": "refusal", "refusal": "no"}]},
            {"role": "user", "content": "and now?"},
        ],
    }
    r = post(gateway, body)
    assert r.status_code == 200, r.text


# --- finding 4: the admin key --------------------------------------------------------------------


def start_serve(tmp: Path, mock: MockUpstream, env: dict[str, str], **cfg: Any) -> tuple[subprocess.Popen[bytes], str]:
    """A bare `cuirass serve` on a fresh data directory (no CLI call before it), umask 022."""
    config = tmp / "cuirass.yaml"
    config.write_text(yaml.safe_dump(gateway_config(mock, **cfg)))
    port = free_port()
    base = {k: v for k, v in os.environ.items() if k != "CUIRASS_ADMIN_KEY"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cuirass",
            "serve",
            "--config",
            str(config),
            "--data-dir",
            str(tmp / "data"),
            "--port",
            str(port),
        ],
        env={**base, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        umask=0o022,
    )
    return proc, f"http://127.0.0.1:{port}"


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("key", ["", "short-key", " sk-cui-admin-0123456789 "])
def test_serve_refuses_an_empty_or_short_admin_key(mock: MockUpstream, tmp_path: Path, key: str) -> None:
    proc, _ = start_serve(tmp_path, mock, {"CUIRASS_ADMIN_KEY": key})
    try:
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        stop(proc)
        pytest.fail("serve started with an empty or short admin key")
    assert proc.returncode != 0
    assert b"CUIRASS_ADMIN_KEY must be at least 16 characters" in err
    assert b"Traceback" not in err
    if key.strip():
        assert key.strip().encode() not in err  # the message never echoes the key


def test_no_bearer_is_never_the_admin_key(mock: MockUpstream, tmp_path: Path) -> None:
    """Even if the stored admin hash were the hash of an empty key, no credentials get no admin access."""
    from cuirass.accounts import AccountStore, KeyHasher
    from cuirass.gateway.app import ADMIN_HASH_META
    from cuirass.storage.migrate import make_engine

    data = tmp_path / "data"
    hasher = KeyHasher.for_data_dir(data)
    AccountStore(make_engine(f"sqlite:///{data / 'cuirass.db'}"), hasher).set_meta(ADMIN_HASH_META, hasher.hash(""))
    proc, root = start_serve(tmp_path, mock, {})
    try:
        wait_http(root + "/health/liveness", proc)
        for headers in ({}, {"authorization": "Bearer"}, {"authorization": "Basic Zm9vOg=="}):
            r = httpx.post(root + "/admin/accounts", json={"name": "intruder"}, headers=headers)
            assert_openai_error(r, 401, "invalid_admin_key")
            assert_openai_error(httpx.get(root + "/admin/accounts", headers=headers), 401, "invalid_admin_key")
    finally:
        stop(proc)


# --- finding 6: overflows, file modes, upstream text, slow clients -------------------------------------


@pytest.mark.parametrize(
    "query, param",
    [
        ("limit=" + "1" + "0" * 30, "limit"),
        ("limit=-1", "limit"),
        ("limit=0", "limit"),
        ("offset=" + "9" * 40, "offset"),
        ("offset=-5", "offset"),
        ("flagged=true&limit=" + "9" * 25, "limit"),
    ],
)
def test_admin_list_bounds_are_a_400(gateway: Gateway, query: str, param: str) -> None:
    root = gateway.base_url.removesuffix("/v1")
    assert_openai_error(httpx.get(f"{root}/admin/accounts?{query}", headers=ADMIN), 400, "invalid_request", param)
    assert httpx.get(f"{root}/admin/accounts?limit=5&offset=0", headers=ADMIN).status_code == 200


def test_admin_export_since_must_be_finite(gateway: Gateway) -> None:
    root = gateway.base_url.removesuffix("/v1")
    for since in ("nan", "inf", "1e999"):
        assert_openai_error(httpx.get(f"{root}/admin/events?since={since}", headers=ADMIN), 400, param="since")


def test_huge_key_limits_are_refused_by_the_api_and_the_cli(gateway: Gateway) -> None:
    root = gateway.base_url.removesuffix("/v1")
    for field in ("requests_per_min", "tokens_per_min"):
        r = httpx.post(f"{root}/admin/accounts/tester/keys", json={field: 2**70}, headers=ADMIN)
        assert_openai_error(r, 400, "invalid_request", field)
    ok = httpx.post(f"{root}/admin/accounts/tester/keys", json={"requests_per_min": 2**31 - 1}, headers=ADMIN)
    assert ok.status_code == 201
    for flag in ("--rpm", "--tpm"):
        cli = gateway.cli("keys", "create", "tester", flag, str(2**70), check=False)
        assert cli.returncode == 2 and f"Invalid value for '{flag}'" in cli.stderr and "Traceback" not in cli.stderr
    assert gateway.cli("accounts", "list", "--limit", "1" + "0" * 30, check=False).returncode == 2
    assert httpx.get(f"{root}/admin/accounts", headers=ADMIN).status_code == 200


def test_data_dir_and_secrets_are_private(mock: MockUpstream, tmp_path: Path) -> None:
    """On a fresh data directory, under an ordinary umask (022): the directory 0700, the database (which
    holds full prompts), its WAL files and the secrets 0600."""
    proc, root = start_serve(tmp_path, mock, {"CUIRASS_ADMIN_KEY": ADMIN_KEY})
    try:
        wait_http(root + "/health/liveness", proc)
        data = tmp_path / "data"
        assert httpx.get(root + "/admin/accounts", headers=ADMIN).status_code == 200  # the store is open

        def mode(p):
            return stat.S_IMODE(p.stat().st_mode)

        assert mode(data) == 0o700
        for name in ("cuirass.db", "cuirass.db-wal", "cuirass.db-shm", "master-secret", "key-secret"):
            assert mode(data / name) == 0o600, name
    finally:
        stop(proc)


def test_upstream_error_text_is_not_relayed(gateway: Gateway) -> None:
    for fault, status in (("500", 502), ("400", 400)):
        r = post(
            gateway,
            {"model": "m", "messages": [{"role": "user", "content": f"fault {fault}"}], "mock": {"fault": fault}},
        )
        err = assert_openai_error(r, status)
        assert "mock: injected" not in r.text and "model server" in err["message"]
    deadline = time.monotonic() + 10
    while len(rows := [r for r in gateway.events() if "fault" in json.dumps(r["messages"])]) < 2:
        assert time.monotonic() < deadline, "the failed requests left no events"
        time.sleep(0.05)
    assert sorted(r["status"] for r in rows) == [400, 502]
    assert all("mock: injected" in r["error"] for r in rows)  # the operator still sees the upstream's words


def test_upstream_error_text_is_relayed_when_configured(make_gateway) -> None:  # type: ignore[no-untyped-def]
    gw = make_gateway(server={"relay_upstream_errors": True})
    r = post(gw, {"model": "m", "messages": MESSAGES, "mock": {"fault": "500"}})
    assert "mock: injected 500" in assert_openai_error(r, 502, "upstream_error")["message"]


def half_sent(port: int, key: str, source: str = "127.0.0.1") -> socket.socket:
    """A request whose headers are complete and whose body stops after a few bytes of a promised 200."""
    s = socket.socket()
    s.bind((source, 0))
    s.connect(("127.0.0.1", port))
    s.sendall(
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        b"authorization: Bearer " + key.encode() + b'\r\ncontent-length: 200\r\n\r\n{"model": "m", '
    )
    return s


def read_response(s: socket.socket, timeout: float) -> bytes:
    s.settimeout(timeout)
    data = b""
    try:
        while chunk := s.recv(65536):
            data += chunk
    except TimeoutError:
        pass
    return data


def test_half_sent_body_gets_408_and_the_connection_closes(make_gateway) -> None:  # type: ignore[no-untyped-def]
    gw = make_gateway(server={"body_timeout_s": 1.0})
    t0 = time.monotonic()
    s = half_sent(gw.port, gw.key)
    data = read_response(s, 15)  # returns when the gateway closes the connection
    waited = time.monotonic() - t0
    s.close()
    assert data.startswith(b"HTTP/1.1 408"), data[:200]
    assert 0.9 <= waited < 8
    err = json.loads(data.split(b"\r\n\r\n", 1)[1])["error"]
    assert err["code"] == "request_timeout" and err["type"] == "timeout_error"
    assert gw.events(expect=1)[-1]["status"] == 408
    served_and_logged(gw)


def test_unfinished_bodies_per_address_are_capped(make_gateway) -> None:  # type: ignore[no-untyped-def]
    """33 stalled bodies from one address: one is refused at once with 429, the 32 others wait; a client at
    another address is served meanwhile, and the address is served again once its bodies are gone."""
    gw = make_gateway(server={"body_timeout_s": 60, "max_unfinished_bodies_per_client": 32})
    socks = [half_sent(gw.port, gw.key, source="127.0.0.2") for _ in range(33)]
    try:
        readable, _, _ = select.select(socks, [], [], 20)
        assert len(readable) >= 1, "no stalled body was refused"
        answer = read_response(readable[0], 5)
        assert answer.startswith(b"HTTP/1.1 429"), answer[:200]
        assert b"too_many_unfinished_bodies" in answer
        served_and_logged(gw)  # from 127.0.0.1
        still, _, _ = select.select([s for s in socks if s is not readable[0]], [], [], 0)
        assert still == [], "a body under the cap was answered before it was complete"
    finally:
        for s in socks:
            s.close()
    with httpx.Client(
        transport=httpx.HTTPTransport(local_address="127.0.0.2"), headers={"authorization": f"Bearer {gw.key}"}
    ) as c:
        deadline = time.monotonic() + 15
        while (
            r := c.post(gw.base_url + "/chat/completions", json={"model": "m", "messages": MESSAGES})
        ).status_code == 429:
            assert time.monotonic() < deadline, "the slots of closed connections were never given back"
            time.sleep(0.1)
        assert r.status_code == 200, r.text
