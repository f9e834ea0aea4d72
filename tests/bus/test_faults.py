"""Issue 18, faults: NATS unavailable for 10 s under traffic, the writer's memory bound reached while the bus
is down (with and without the spool), and `kill -9` of a gateway publishing to the bus. In every case no
request fails and every answered request's event ends up in the stream exactly once."""

from __future__ import annotations

import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import openai
import pytest

from tests.bus.conftest import SHARED_NATS, NatsServer, stream_rows
from tests.conftest import Gateway
from tests.gateway.test_hardening_events import _restart  # serve again on the same data dir and port


def _ask(c: openai.OpenAI, i: int) -> str:
    raw = c.chat.completions.with_raw_response.create(
        model="m", max_tokens=4, messages=[{"role": "user", "content": f"question {i}: what is {i} plus {i}?"}]
    )
    assert raw.parse().choices[0].message.content
    return str(raw.headers["x-request-id"])


def _readiness(gw: Gateway) -> tuple[int, dict[str, Any]]:
    r = httpx.get(gw.base_url.removesuffix("/v1") + "/health/readiness", timeout=10)
    return r.status_code, r.json()


def _exactly_once(url: str, stream: str, answered: list[str]) -> None:
    ids = [r["request_id"] for r in stream_rows(url, stream, expect=len(answered), timeout=30)]
    assert len(ids) == len(set(ids)), f"{len(ids) - len(set(ids))} events twice in the stream"
    assert set(answered) <= set(ids), f"{len(set(answered) - set(ids))} answered requests have no event"


def test_nats_down_10s_under_traffic_loses_nothing(make_gateway, own_nats: NatsServer) -> None:  # type: ignore[no-untyped-def]
    stream = "OUTAGE"
    gw: Gateway = make_gateway(events={"bus": own_nats.url, "bus_stream": stream}, detection={"enabled": False})
    c = openai.OpenAI(base_url=gw.base_url, api_key=gw.key, max_retries=0, timeout=10)
    answered: list[str] = []
    failures: list[str] = []
    stop = threading.Event()

    def traffic(worker: int) -> None:
        i = 0
        while not stop.is_set():
            try:
                answered.append(_ask(c, worker * 100_000 + i))
            except Exception as exc:  # noqa: BLE001 - any failure is what this test is about
                failures.append(repr(exc))
            i += 1
            time.sleep(0.01)

    threads = [threading.Thread(target=traffic, args=(w,)) for w in range(3)]
    for t in threads:
        t.start()
    time.sleep(2)
    before = len(answered)
    own_nats.kill()
    down_at = time.monotonic()
    time.sleep(3)
    code, ready = _readiness(gw)  # down, but the backlog is far below queue_max: still ready
    assert ready["event_store"]["backend"] == "jetstream" and ready["event_store"]["reachable"] is False
    assert code == 200 and ready["status"] == "ready", ready
    time.sleep(max(0.0, 10 - (time.monotonic() - down_at)))
    during = len(answered) - before
    own_nats.start()
    time.sleep(3)
    stop.set()
    for t in threads:
        t.join(30)
    assert not failures, failures[:3]
    assert during > 50, "traffic should go on while NATS is down"
    _exactly_once(own_nats.url, stream, answered)
    deadline = time.monotonic() + 20
    while (ready := _readiness(gw)[1])["event_store"]["queue_depth"] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert ready["event_store"]["reachable"] is True and ready["event_store"]["queue_depth"] == 0
    assert ready["event_store"]["last_error"] is None
    gw.stop()
    assert "Traceback" not in gw.stderr


@pytest.mark.parametrize("spool", [True, False])
def test_memory_bound_spills_to_the_spool_and_loses_nothing(make_gateway, own_nats: NatsServer, spool: bool) -> None:  # type: ignore[no-untyped-def]
    """queue_max 5, batch_size 3: with NATS down, memory holds at most 5 queued events plus the batch in hand,
    the rest waits in the spool (or, with no spool, in memory); readiness is unready past the bound."""
    stream = "BOUND"
    own_nats.kill()  # down from the start: the gateway has never reached it
    gw: Gateway = make_gateway(
        events={"bus": own_nats.url, "bus_stream": stream, "queue_max": 5, "batch_size": 3, "spool": spool},
        detection={"enabled": False},
    )
    c = openai.OpenAI(base_url=gw.base_url, api_key=gw.key, max_retries=0, timeout=10)
    answered = [_ask(c, i) for i in range(40)]  # every request is answered, bus or no bus
    code, ready = _readiness(gw)
    ev = ready["event_store"]
    assert code == 503 and ready["status"] == "unready" and ev["reachable"] is False
    assert ev["queue_depth"] >= 40 - 3, ev  # all but the batch in hand (1 to 3 events) wait
    if spool:
        assert ev["spilled"] == ev["queue_depth"] - 5, ev  # queue_max in memory, the rest in the spool only
    else:
        assert ev["spilled"] == 0  # no file to spill to: the queue grows past its bound
    own_nats.start()
    _exactly_once(own_nats.url, stream, answered)
    deadline = time.monotonic() + 20
    while (state := _readiness(gw))[1]["status"] != "ready" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert state[0] == 200 and state[1]["event_store"]["queue_depth"] == 0 and state[1]["event_store"]["spilled"] == 0
    # After the spill, events are queued again as before.
    more = [_ask(c, 100 + i) for i in range(5)]
    _exactly_once(own_nats.url, stream, answered + more)
    gw.stop()
    assert "Traceback" not in gw.stderr
    if spool:
        assert not list((gw.data_dir / "spool").glob("*.jsonl")), "every spilled event is published"


def test_kill_9_of_a_gateway_loses_no_answered_event(make_gateway, stream: str) -> None:  # type: ignore[no-untyped-def]
    """kill -9 under traffic: what the bus acknowledged is in the stream; the rest is in the spool, which
    the next gateway on the same data directory publishes. The count of events lost is printed and must be 0."""
    gw: Gateway = make_gateway(events={"bus": SHARED_NATS, "bus_stream": stream}, detection={"enabled": False})
    c = openai.OpenAI(base_url=gw.base_url, api_key=gw.key, max_retries=0, timeout=10)
    answered: list[str] = []
    enough = threading.Event()

    def one(i: int) -> None:
        if enough.is_set():
            return
        try:
            answered.append(_ask(c, i))
        except openai.APIError:
            return  # not answered: the gateway died first
        if len(answered) >= 300:
            enough.set()

    with ThreadPoolExecutor(16) as pool:
        futures = [pool.submit(one, i) for i in range(500)]
        assert enough.wait(90)
        gw.proc.send_signal(signal.SIGKILL)
        gw.proc.wait(10)
        for f in futures:
            f.result()
    time.sleep(1)  # acknowledgements in flight land (or not) before the stream is read
    in_stream = {r["request_id"] for r in stream_rows(SHARED_NATS, stream)}
    acked_before = len(set(answered) & in_stream)
    _restart(gw)
    _exactly_once(SHARED_NATS, stream, answered)
    print(
        f"\nkill -9: {len(answered)} answered, {acked_before} in the stream at the kill, "
        f"{len(answered) - acked_before} published from the spool after restart, 0 lost"
    )
    # Usually the kill lands with answered events not yet acknowledged, and the spool is what saves them; on a
    # loaded machine it can land after the last acknowledgement, and then the check above is the whole claim.
    if acked_before < len(answered):
        _, ready = _readiness(gw)
        assert ready["event_store"]["replayed"] >= len(answered) - acked_before - 5  # duplicates are not counted
