"""Signals as pure functions of request digests: direction of evidence, bounds, registry."""

from __future__ import annotations

import pytest

from cuirass.detect import digest as D
from cuirass.detect.digest import Digest
from cuirass.detect.signals import DEFAULT, SIGNALS, Context, build
from cuirass.detect.signals.templates import KEEP


def dg(ts: float, flags: int = 0, keys: tuple[int, ...] = (), words: int = 30, **kw: object) -> Digest:
    base = {
        "account": "a",
        "model": "m",
        "created": None,
        "ip_net": None,
        "user_agent": None,
        "payment": None,
        "max_tokens": None,
        "system_key": 0,
        "topic": 0,
        "phrase": None,
        "thread": int(ts) + 1,
    }
    base.update(kw)
    return Digest(ts=ts, flags=flags, keys=keys, words=words, **base)  # type: ignore[arg-type]


def feed(name: str, digests: list[Digest]) -> float:
    signal = SIGNALS[name]()
    state, ctx, value = signal.new_state(), Context(), 0.0
    for d in digests:
        value = signal.observe(state, d, 1.0, ctx)
    return value


def test_registry_builds_the_defaults_in_order() -> None:
    assert [s.name for s in build()] == list(DEFAULT)
    with pytest.raises(ValueError):
        build(["reasoning", "no-such-signal"])


def test_reasoning_evidence_grows_with_the_share_of_requests() -> None:
    some = feed("reasoning", [dg(i, D.REASONING_ASK if i == 20 else 0) for i in range(40)])
    most = feed("reasoning", [dg(i, D.REASONING_ASK if i % 2 == 0 else 0) for i in range(40)])
    none = feed("reasoning", [dg(i) for i in range(40)])
    assert none < 0 < some < most <= SIGNALS["reasoning"].hi


def test_reasoning_discussed_afterwards_counts_less() -> None:
    asked = [dg(10 * i, D.REASONING_ASK, thread=i + 1) for i in range(6)]
    followed = [
        x
        for i in range(6)
        for x in (dg(10 * i, D.REASONING_ASK, thread=i + 1), dg(10 * i + 5, D.FOLLOWUP, thread=i + 1))
    ]
    assert feed("reasoning", followed) < feed("reasoning", asked)


def test_templates_need_scaffolding_around_new_content() -> None:
    templated = [dg(i, keys=(7, 1000 + i)) for i in range(20)]
    resent = [dg(i, keys=(7, 8)) for i in range(20)]
    assert feed("templates", templated) > 1.0
    assert feed("templates", resent) <= 0.0


def test_template_state_is_bounded() -> None:
    signal = SIGNALS["templates"]()
    state = signal.new_state()
    for i in range(5000):
        signal.observe(state, dg(i, keys=(i, i + 1_000_000)), 1.0, Context())
    assert len(state.keys) <= 2 * KEEP


def test_probing() -> None:
    probes = [dg(i, D.LOGPROBS | D.LOGIT_BIAS if i % 3 == 0 else 0, max_tokens=2 ** (i % 9)) for i in range(30)]
    assert feed("probing", probes) > 2.0
    assert feed("probing", [dg(i, max_tokens=512) for i in range(30)]) == 0.0


def test_timing_regular_round_the_clock_vs_human_sessions() -> None:
    script = [dg(60.0 * i) for i in range(24 * 60)]
    human, t = [], 0.0
    for day in range(6):
        t = day * 86400 + 9 * 3600
        for j in range(8):
            human.append(dg(t))
            t += 30 + (j * 97) % 400
    assert feed("timing", script) > 1.5
    assert feed("timing", human) <= 0.0


def test_shape_single_shot_vs_conversations() -> None:
    assert feed("shape", [dg(i) for i in range(20)]) > 0
    assert feed("shape", [dg(i, D.FOLLOWUP if i % 4 else 0) for i in range(20)]) < 0


def test_age_and_infra_and_pivot() -> None:
    assert feed("age", [dg(1000.0 + i, created=900.0) for i in range(60)]) > 1.0
    assert feed("age", [dg(200 * 86400.0, created=0.0)]) < 0
    assert feed("infra", [dg(i, ip_net=f"10.0.{i}.0/24") for i in range(12)]) > 0
    assert feed("infra", [dg(i, ip_net="10.0.0.0/24") for i in range(12)]) == 0
    ctx, signal = Context(), SIGNALS["pivot"]()
    state = signal.new_state()
    signal.observe(state, dg(0.0, model="old"), 1.0, ctx)
    signal.observe(state, dg(10.0, account="someone-else", model="new"), 1.0, ctx)  # first seen globally
    assert signal.observe(state, dg(20.0, model="new"), 1.0, ctx) > 0


def test_links_are_kind_value_pairs() -> None:
    signals = build()
    for signal in signals:
        state = signal.new_state()
        for i in range(5):
            signal.observe(
                state,
                dg(
                    float(i),
                    keys=(5, 6, 100 + i),
                    ip_net="1.2.3.0/24",
                    user_agent="ua",
                    payment="pf",
                    created=0.0,
                    system_key=9,
                ),
                1.0,
                Context(),
            )
        for kind, _ in signal.links(state):
            assert kind.isidentifier()
        assert len(signal.summary(state)) == signal.summary_size
