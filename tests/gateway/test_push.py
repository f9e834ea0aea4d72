"""Verdicts, overrides and key revocations pushed to every gateway of a fleet (docs/fleet.md), end to end.

Two `cuirass serve` processes share one PostgreSQL database. They poll verdicts every 30 s and trust a
looked-up key for 30 s, so only the push can explain a change that one of them applies within a second
of another process writing it.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from cuirass.accounts import AccountStore, KeyHasher, parse_key
from cuirass.bus.notify import NatsNotifier, Notifier, RedisNotifier
from cuirass.bus.push import MAX_IDS, Notice, Publisher, PushedVerdicts, Receiver, decode, encode
from cuirass.processes import free_port
from cuirass.storage.migrate import make_engine
from cuirass.verdicts.store import VerdictCache, VerdictStore
from tests.conftest import ADMIN_KEY, Gateway, MockUpstream, gateway_config

PG = "postgresql+psycopg://postgres@127.0.0.1:5432/"
REDIS = "redis://127.0.0.1:6379/0"
MESSAGES = [{"role": "user", "content": "What is 2 + 2?"}]
WITHIN_S = 1.0  # the bound: every gateway applies a change within one second


@pytest.fixture
def database() -> Iterator[str]:
    name = f"cuirass_push_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG + "postgres", isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE {name}")
    except sa.exc.OperationalError:
        pytest.skip("PostgreSQL is not running on 127.0.0.1:5432")
    yield PG + name
    with admin.connect() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    admin.dispose()


class Fleet:
    """Two gateways on one database and one push channel; gw1 has account `tester`, gw2 `tester2`."""

    def __init__(
        self, tmp: Path, mock: MockUpstream, database: str, push: str, auth_ttl_s: float = 30, **detection: Any
    ) -> None:
        self.channel = f"cuirass.test.{uuid.uuid4().hex[:12]}"  # other runs on this machine stay apart
        self.push = push
        self.database = database
        cfg = gateway_config(
            mock,
            storage={"url": database},
            auth={"cache_ttl_s": auth_ttl_s},
            detection={"enabled": False, "refresh_s": 30, "push": push, "push_channel": self.channel, **detection},
            policy={"bands": [{"name": "flagged", "when": {"flagged": True}, "actions": ["block"]}]},
        )
        env = {"CUIRASS_KEY_SECRET": secrets.token_hex(32)}  # one key hasher for the fleet, as in production
        self.gw1 = Gateway(tmp / "gw1", cfg, env=env)
        self.gw2 = Gateway(tmp / "gw2", cfg, env=env, account="tester2")
        self.gateways = (self.gw1, self.gw2)

    def stop(self) -> None:
        for gw in self.gateways:
            gw.stop()


@pytest.fixture
def make_fleet(mock: MockUpstream, database: str, tmp_path: Path) -> Iterator[Callable[..., Fleet]]:
    made: list[Fleet] = []

    def make(push: str, auth_ttl_s: float = 30, **detection: Any) -> Fleet:
        made.append(Fleet(tmp_path / f"fleet{len(made)}", mock, database, push, auth_ttl_s, **detection))
        return made[-1]

    yield make
    for fleet in made:
        fleet.stop()


def status(gw: Gateway, key: str) -> int:
    r = httpx.post(
        gw.base_url + "/chat/completions",
        headers={"authorization": f"Bearer {key}"},
        json={"model": "m", "messages": MESSAGES, "max_tokens": 2},
        timeout=10,
    )
    return r.status_code


def admin(gw: Gateway, method: str, path: str, **kw: Any) -> httpx.Response:
    url = gw.base_url.removesuffix("/v1") + path
    return httpx.request(method, url, headers={"authorization": f"Bearer {ADMIN_KEY}"}, timeout=10, **kw)


def until(gw: Gateway, key: str, want: int, within: float = WITHIN_S) -> float:
    """Seconds until `gw` answers `key` with status `want`; fails past `within`."""
    t0 = time.monotonic()
    while True:
        got = status(gw, key)
        took = time.monotonic() - t0
        if got == want:
            return took
        assert took < within, f"{gw.base_url} still answers {got}, not {want}, after {took:.2f}s"
        time.sleep(0.02)


def ready(gw: Gateway) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(gw.base_url.removesuffix("/v1") + "/health/readiness", timeout=10).json()
    return body


def notifier_for(push: str, channel: str) -> Notifier:
    return RedisNotifier(push, channel) if push.startswith("redis") else NatsNotifier(push, channel)


def wait_connected(fleet: Fleet, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not all(ready(gw)["push"]["connected"] for gw in fleet.gateways):
        assert time.monotonic() < deadline, "the gateways never subscribed"
        time.sleep(0.05)


def test_push_down_requests_are_served_and_changes_arrive_by_polling(make_fleet: Callable[..., Fleet]) -> None:
    fleet = make_fleet(f"redis://127.0.0.1:{free_port()}/0", auth_ttl_s=0.5, refresh_s=0.5)  # nothing listens
    gw1, gw2 = fleet.gateways
    assert [status(gw, gw1.key) for gw in fleet.gateways] == [200, 200]
    t0 = time.monotonic()
    assert admin(gw1, "PUT", "/admin/accounts/tester/verdict", json={"verdict": "flag", "reason": "t"}).is_success
    assert admin(gw1, "DELETE", f"/admin/keys/{parse_key(gw2.key)}").is_success
    assert time.monotonic() - t0 < 2  # the writes do not wait on the dead backend
    until(gw2, gw1.key, 403, within=3)  # the next poll brings them
    until(gw1, gw2.key, 401, within=3)
    push = ready(gw1)["push"]
    assert ready(gw1)["status"] == "ready" and push["connected"] is False and push["send_failed"] >= 2
    assert 'cuirass_push_notices_total{outcome="send_failed"}' in httpx.get(gw1.base_url[:-3] + "/metrics").text


class OwnServer:
    """A Redis or NATS server of this test's own, on a free port, that it may kill and start again."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.port = free_port()
        self.url = f"{kind}://127.0.0.1:{self.port}" + ("/0" if kind == "redis" else "")
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        if self.kind == "redis":
            exe = shutil.which("redis-server") or "/usr/sbin/redis-server"
            args = [exe, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no"]
        else:
            exe = shutil.which("nats-server") or "/usr/sbin/nats-server"
            args = [exe, "-a", "127.0.0.1", "-p", str(self.port)]
        if not os.path.exists(exe):
            pytest.skip(f"no {self.kind} server binary")
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                assert time.monotonic() < deadline, f"{self.kind} did not start"
                time.sleep(0.05)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)


@pytest.mark.parametrize("kind", ["redis", "nats"])
def test_every_gateway_applies_a_change_within_a_second(make_fleet: Callable[..., Fleet], kind: str) -> None:
    server = OwnServer(kind)  # its own, so that this test may stop it
    try:
        fleet = make_fleet(server.url)
        gw1, gw2 = fleet.gateways
        wait_connected(fleet)
        assert ready(gw2)["push"]["backend"] == kind
        # Both gateways now hold the verdict map and trust both keys for 30 s.
        assert [status(gw, gw1.key) for gw in fleet.gateways] == [200, 200]
        assert status(gw2, gw2.key) == 200

        # An override through gw1's admin API blocks the account on gw2.
        assert admin(gw1, "PUT", "/admin/accounts/tester/verdict", json={"verdict": "flag", "reason": "t"}).is_success
        until(gw2, gw1.key, 403)
        # ... and one through the CLI (a process of its own) lifts it on both.
        gw2.cli("accounts", "verdict", "tester", "clear", "--reason", "false alarm")
        for gw in fleet.gateways:
            until(gw, gw1.key, 200)

        # The detection service's writes (made here, through the wrapper the service writes through) too.
        engine = make_engine(fleet.database)
        notifier = notifier_for(server.url, fleet.channel)
        try:
            verdicts = PushedVerdicts(VerdictStore(engine), Publisher(notifier))
            row = {"score": 0.97, "flagged": True, "reasons": ["r"], "campaign": None, "first_flagged_ts": time.time()}
            verdicts.put_auto([{"account": "tester2", **row}])
            for gw in fleet.gateways:
                until(gw, gw2.key, 403)
        finally:
            notifier.close()
            engine.dispose()

        # A key revoked through gw1's admin API is refused by both at once, though both had it cached.
        assert admin(gw1, "DELETE", f"/admin/keys/{parse_key(gw1.key)}").is_success
        for gw in fleet.gateways:
            until(gw, gw1.key, 401)
        # ... and one revoked through the CLI.
        made = admin(gw1, "POST", "/admin/accounts/tester/keys", json={}).json()
        assert [status(gw, made["key"]) for gw in fleet.gateways] == [200, 200]
        gw1.cli("keys", "revoke", made["key_id"])
        for gw in fleet.gateways:
            until(gw, made["key"], 401)

        # The push backend goes away: both keep serving, and writes still succeed.
        key_a, key_b = (admin(gw1, "POST", "/admin/accounts/tester/keys", json={}).json() for _ in range(2))
        assert [status(gw2, key_a["key"]), status(gw2, key_b["key"])] == [200, 200]
        server.kill()
        assert admin(gw1, "PUT", "/admin/accounts/tester/verdict", json={"verdict": "flag", "reason": "t"}).is_success
        assert admin(gw1, "DELETE", f"/admin/keys/{key_b['key_id']}").is_success
        assert [status(gw2, key_a["key"]), status(gw2, key_b["key"])] == [200, 200]  # no notice came: as it knew
        # Back: each gateway resubscribes and re-reads everything, so what it missed applies then.
        server.start()
        wait_connected(fleet)
        until(gw2, key_a["key"], 403)
        until(gw2, key_b["key"], 401)
        # And new changes are pushed again.
        gw2.cli("accounts", "verdict", "tester", "clear", "--reason", "back")
        for gw in fleet.gateways:
            until(gw, key_a["key"], 200)
        sent = ready(gw1)["push"]
        assert (sent["sent"], sent["send_failed"]) == (2, 2)  # flag and revoke, before and during the outage
        assert ready(gw2)["push"]["rejected"] == 0
    finally:
        server.kill()


# -- hostile payloads on the channel ---------------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=80),
    lambda inner: st.lists(inner, max_size=8) | st.dictionaries(st.text(max_size=10), inner, max_size=8),
    max_leaves=30,
)
NOTICE_LIKE = st.fixed_dictionaries(
    {},
    optional={
        "v": st.one_of(st.just(1), JSON),
        "kind": st.one_of(st.sampled_from(["verdicts", "keys"]), JSON),
        "ids": st.one_of(st.lists(st.text(max_size=70), max_size=MAX_IDS + 2), JSON),
        "all": st.one_of(st.booleans(), JSON),
        "origin": st.one_of(st.text(max_size=70), JSON),
        "n": st.one_of(st.integers(), JSON),
    },
)
PAYLOADS = st.one_of(
    st.binary(max_size=2048),
    JSON.map(lambda v: json.dumps(v).encode()),
    NOTICE_LIKE.map(lambda v: json.dumps(v).encode()),
    st.sampled_from([b"", b"\xff" * 100_000, b"[" * 50_000, b'{"v": 1, "ids": "' + b"a" * 40_000 + b'"}']),
)


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[tuple[Receiver, VerdictStore]]:
    engine = make_engine(f"sqlite:///{tmp_path / 'push.db'}")
    store = VerdictStore(engine)
    rx = Receiver(VerdictCache(store), AccountStore(engine, KeyHasher(b"k" * 32)))
    notifier = RedisNotifier(REDIS, f"cuirass.test.{uuid.uuid4().hex[:12]}")
    rx.attach(notifier)
    yield rx, store
    notifier.close()
    rx.close()
    engine.dispose()


@hsettings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=PAYLOADS)
def test_hostile_payloads_never_crash_the_receiver(receiver: tuple[Receiver, VerdictStore], payload: bytes) -> None:
    rx, _ = receiver
    try:
        notice = decode(payload)
    except ValueError:
        notice = None
    if notice is not None:  # whatever passes is one of ours, in bounds, and reads back the same
        assert len(notice.ids) <= MAX_IDS and all(0 < len(i) <= 64 for i in notice.ids)
        assert decode(encode(notice)) == notice
    rx.on_message(payload)  # what the notifier's thread calls: must return, never raise


def test_after_hostile_payloads_a_real_notice_still_applies(receiver: tuple[Receiver, VerdictStore]) -> None:
    rx, store = receiver
    assert rx.notifier is not None
    deadline = time.monotonic() + 5
    while not rx.notifier.connected:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    hostile = [b"\x00" * 1_000_000, b"{}", b'{"v": 1, "kind": "verdicts", "ids": [1], "all": 0, "origin": "", "n": 1}']
    for payload in hostile:
        rx.notifier.publish(payload)  # over the real channel
    store.override("acct_x", "flag", "pytest", "after the garbage")
    rx.notifier.publish(encode(Notice("verdicts", ("acct_x",), False, "pytest", 1)))
    deadline = time.monotonic() + WITHIN_S
    while (v := rx.cache.get("acct_x")) is None or not v.flagged:
        assert time.monotonic() < deadline, "the notice after the garbage was not applied"
        time.sleep(0.01)
    assert rx.rejected >= len(hostile) and rx.received >= 1
