"""The statistics: exact p-values, uniform under the null, family-wise error held over 10,000 keys."""

from __future__ import annotations

import hashlib

import numpy as np
from scipy.stats import binom

from cuirass.marks.text import detect, embed, merge, score_many, units
from cuirass.marks.text.null import GreenNull
from cuirass.prove.channels import TextChannel
from cuirass.prove.correction import bonferroni, holm, ks_uniform


def _keys(label: str, n: int) -> list[bytes]:
    return [hashlib.sha256(f"{label}|{i}".encode()).digest() for i in range(n)]


def test_pooled_p_values_are_the_exact_poisson_binomial_tail(answers: tuple[str, ...]) -> None:
    """Text channel: X ~ Poisson-binomial(1/k_i) over the corpus's distinct windows (tested against scipy
    and exact rational arithmetic in tests/respond/test_watermark.py)."""
    key = _keys("exact", 1)[0]
    texts = [embed(t, key) for t in answers[:20]] + list(answers[20:60])
    pooled = merge(units(t, stop=frozenset()) for t in texts)
    null = GreenNull(k for *_, k in pooled)
    scores = TextChannel().score(texts, _keys("exact", 30))
    for s in scores:
        assert s.n_scored == len(pooled) > 100
        assert s.p_value == float(null.sf_ge(s.n_green))
    assert scores[0].p_value < 1e-6 < min(s.p_value for s in scores[1:])


def test_per_text_p_values_uniform_on_clean_text(answers: tuple[str, ...]) -> None:
    """>= 1,000 clean answers, each under its own random key: randomized p ~ U(0,1), exact p valid."""
    keys = _keys("uniform", 1200)
    results = [detect(t, k) for t, k in zip(answers[:1200], keys, strict=True)]
    assert ks_uniform([r.p_randomized for r in results]).uniform
    plain = np.array([r.p_value for r in results])
    for a in (0.05, 0.1, 0.25):  # valid: P(p <= a) <= a, up to 3 binomial standard errors
        assert (plain <= a).mean() <= a + 3 * np.sqrt(a * (1 - a) / len(plain))


def test_pooled_p_values_uniform_across_keys(answers: tuple[str, ...]) -> None:
    """One pooled corpus, 1,000 keys: the per-key tests are independent, randomized p ~ U(0,1)."""
    scores = TextChannel().score(list(answers[1200:1240]), _keys("pooled", 1000))
    assert ks_uniform([s.p_randomized for s in scores]).uniform
    assert np.mean([s.p_value <= 0.05 for s in scores]) <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / 1000)


def test_family_wise_error_holds_over_10000_keys(answers: tuple[str, ...]) -> None:
    """Runs of 10,000 random keys through the real detector on clean text: Holm keeps P(any) <= alpha."""
    alpha, n_keys = 0.01, 10_000
    # short answers with 20..28 bits (sum of log2 k): 2^-20 < alpha / K, so a rejection is possible in every run
    runs = [us for us in (units(t) for t in answers[1300:1700]) if 20 <= sum(np.log2(k) for *_, k in us) <= 28][:6]
    assert len(runs) == 6
    any_holm = any_raw = 0
    randomized = []
    for r, us in enumerate(runs):
        res = score_many(us, _keys(f"fwer{r}", n_keys), salt=b"run%d" % r)
        p = np.array([x.p_value for x in res])
        randomized += [x.p_randomized for x in res]  # independent across keys
        any_holm += min(holm(p)) < alpha
        any_raw += p.min() < alpha
        # Exact FWER of this run: Holm rejects anything iff min p < alpha / K; keys are independent.
        n, null = res[0].n_scored, GreenNull(k for *_, k in us)
        cut = next(c for c in range(n + 2) if null.sf_ge(c) < alpha / n_keys)
        p_one = float(null.sf_ge(cut))
        assert 1 - (1 - p_one) ** n_keys <= alpha
    assert any_raw == len(runs)  # uncorrected, every run "finds" a key
    assert any_holm <= binom.ppf(0.999, len(runs), alpha)
    assert ks_uniform(randomized).uniform  # 60,000 per-key null p-values


def test_holm_matches_definition() -> None:
    p = [0.01, 0.04, 0.03, 0.005, 0.5]
    q = holm(p)
    # sorted: 0.005*5=.025, 0.01*4=.04, 0.03*3=.09, 0.04*2=.08 -> .09 (monotone), 0.5*1=.5
    assert np.allclose(q, [0.04, 0.09, 0.09, 0.025, 0.5])
    assert all(h <= b for h, b in zip(q, bonferroni(p), strict=True))
    assert holm([]) == []
