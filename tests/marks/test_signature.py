"""The answer signature (`marks.signature`): keyed lead-ins that keep the answer, and an exact test."""

from __future__ import annotations

import itertools
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from cuirass.marks import signature as sig
from cuirass.marks.answer import find_final_answer
from cuirass.models.everyday import everyday
from cuirass.models.problems import problems

KEY = b"s" * 32
REPLIES = [(p.question, p.solution) for p in problems(200, seed=3)]


def same_answer(reply: str, signed: str) -> bool:
    """A checker reads the same answer under the same convention, and nothing after it changed."""
    a, b = find_final_answer(reply), find_final_answer(signed)
    if a is None or b is None:
        return a is b
    return (a.normalized, a.convention, reply[a.end :]) == (b.normalized, b.convention, signed[b.end :])


def test_the_lead_in_is_the_keyed_one_and_the_answer_is_kept() -> None:
    seen = set()
    for prompt, reply in REPLIES:
        signed = sig.embed(reply, prompt, KEY)
        assert sig.read(signed) == sig.keyed(KEY, sig.window(prompt))
        assert same_answer(reply, signed)
        assert signed[: signed.rfind("\n\n")] == reply[: reply.rfind("\n\n")]  # only the answer line changes
        seen.add(sig.read(signed))
    assert len(seen) > sig.K // 2  # the windows of real prompts spread over the variants
    assert sig.embed(sig.embed(REPLIES[0][1], "p", KEY), "p", KEY) == sig.embed(REPLIES[0][1], "p", KEY)


def test_everyday_answers_are_signed_too() -> None:
    for p in (everyday(seed) for seed in range(100)):
        signed = sig.embed(p.solution, p.question, KEY)
        assert same_answer(p.solution, signed)
        assert sig.read(signed) is not None


def test_answers_it_does_not_know_are_left_alone() -> None:
    for text in (
        "Putting it all together, the answer is 4.",  # a lead-in of the answer's own
        "#### 42",
        "The capital of France is Paris.",
        "",
    ):
        assert sig.embed(text, "what?", KEY) == text


def test_windows() -> None:
    assert sig.window("How many apples does she have now?") == "now"
    assert sig.window("what is 15 + 27") == "is"
    assert sig.window("Cost in EUR!!! 42") == "eur"
    assert sig.window("1 + 1 = ?") == ""
    assert sig.window("x" * 10_000) == "x" * sig.MAX_WORD


def test_the_null_is_exact() -> None:
    """P(T >= t) from the convolution equals the enumeration over every keyed assignment of the windows."""
    rng = np.random.default_rng(0)
    tables = [rng.integers(0, 4, size=sig.K) for _ in range(3)]
    totals = [sum(int(c[v]) for c, v in zip(tables, pick)) for pick in itertools.product(range(sig.K), repeat=3)]
    for t in range(max(totals) + 2):
        want = sum(x >= t for x in totals) / len(totals)
        assert abs(sig.null_tail(tables, t) - want) < 1e-12


def test_random_keys_give_uniform_p_values_on_answers_they_did_not_sign() -> None:
    """A suspect that always writes its own lead-in (a clean model): no key implicates it beyond chance."""
    pairs = [(q, sig.embed(r, q, b"other" * 8)) for q, r in REPLIES]
    by_window = sig.counts(pairs)
    ps = [sig.score(by_window, os.urandom(32)).p_value for _ in range(400)]
    assert sum(p <= 0.05 for p in ps) <= 0.05 * len(ps) + 12  # valid at 5% (binomial slack for 400 keys)
    assert min(ps) > 1e-4


def test_signed_answers_implicate_their_key_only() -> None:
    pairs = [(q, sig.embed(r, q, KEY)) for q, r in REPLIES]
    by_window = sig.counts(pairs)
    assert sig.score(by_window, KEY).p_value < 1e-6
    assert sig.score(by_window, b"t" * 32).p_value > 1e-3


@settings(max_examples=200, deadline=None)
@given(text=st.text(), prompt=st.text(), tail=st.sampled_from(["", "The answer is 7.", "So the answer is 1,000."]))
def test_any_text_keeps_its_final_answer(text: str, prompt: str, tail: str) -> None:
    reply = text + tail
    signed = sig.embed(reply, prompt, KEY)
    assert same_answer(reply, signed)
    assert len(signed) <= len(reply) + 20


def test_the_rewrite_is_linear_on_hostile_input() -> None:
    import time

    for unit in ("answer is 1. ", "The answer is ", "a" * 50, "So the answer is 2.\n"):
        text = unit * (100_000 // len(unit))
        t = time.process_time()
        sig.embed(text, "x " * 50_000, KEY)
        assert time.process_time() - t < 2.0, unit


def test_the_rank_test_is_exact_and_finds_a_learned_signature() -> None:
    rng = np.random.default_rng(1)
    noise = {f"w{i}": rng.normal(size=sig.K) for i in range(3)}
    ranks = [sum(p) for p in itertools.product(range(sig.K), repeat=3)]
    r, p = sig.rank_test(noise, KEY)
    assert abs(p - sum(x >= r for x in ranks) / len(ranks)) < 1e-12  # the enumeration over every assignment
    learned = {f"w{i}": np.eye(sig.K)[sig.keyed(KEY, f"w{i}")] for i in range(20)}  # the keyed lead-in on top
    assert sig.rank_test(learned, KEY) == (20 * (sig.K - 1), pytest.approx(sig.K**-20, rel=1e-9))
    ps = [sig.rank_test(learned, os.urandom(32))[1] for _ in range(300)]
    assert sum(p <= 0.05 for p in ps) <= 0.05 * 300 + 10 and min(ps) > 1e-5  # other keys: nothing


def test_the_rank_score_randomized_p_is_uniform_and_its_z_standardised() -> None:
    """The likelihood channel reports R with a randomized p (exactly uniform under H0, for the control's KS
    check) and z = (R - E R) / sd R; over random keys on fixed scores both behave as the null says."""
    rng = np.random.default_rng(2)
    scores = {f"w{i}": rng.normal(size=sig.K) for i in range(6)}
    got = [sig.rank_score(scores, os.urandom(32), u=float(rng.uniform())) for _ in range(2000)]
    assert stats.kstest([g.p_randomized for g in got], "uniform").pvalue > 0.001
    zs = np.array([g.z for g in got])
    assert abs(zs.mean()) < 0.1 and abs(zs.std() - 1) < 0.1
    assert all(g.p_randomized <= g.p_value for g in got)
