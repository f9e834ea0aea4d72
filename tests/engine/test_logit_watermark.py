"""The logit watermark: one keyed function for generation and detection; exact p-values."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import binom, kstest

from cuirass.engine.batch import run_choice
from cuirass.engine.params import parse
from cuirass.marks.logit.detect import detect_text, detect_tokens, windows
from cuirass.marks.logit.keyed import GAMMA, LISTS, context_seed, green, green_count, green_count_list, window_counts
from cuirass.respond.base import DefenseContext
from cuirass.respond.logit.base import LOGIT_DEFENSES
from cuirass.respond.logit.watermark import LogitWatermark

KEY = bytes(range(32))
OTHER = bytes(range(1, 33))


def ascii_only(lm):  # type: ignore[no-untyped-def]
    """A processor that keeps a random model to printable ASCII tokens, so its text re-tokenises cleanly."""
    import torch

    bad = torch.tensor(
        [
            not (t := lm.tokenizer.decode([i])).isascii() or not t.isprintable() or i in lm.eos_ids
            for i in range(lm.vocab_size)
        ]
    )
    return lambda ids, scores: scores.masked_fill(bad, float("-inf"))


def generate(lm, seed: int, key: bytes | None, n: int = 120, clean: bool = False, **opts):  # type: ignore[no-untyped-def]
    req = parse(lm, "/v1/completions", {"prompt": "the answer is", "max_tokens": n, "seed": seed})
    procs = [ascii_only(lm)] if clean else []
    if key is not None:
        opts.setdefault("min_prob", 0)  # a random model finds no token plausible: boost every green one
        ctx = DefenseContext(account="a", cohort="c000", prompt="", endpoint="", model="m", key=key)
        procs.append(LogitWatermark(**opts).processor(ctx, lm.tokenizer))
    return run_choice(lm, req, 0, procs, threading.Event())


def test_registered_and_options_validated() -> None:
    assert LOGIT_DEFENSES["logit_watermark"] is LogitWatermark
    with pytest.raises(ValueError):
        LogitWatermark(gamma=1.5)
    with pytest.raises(ValueError):
        LogitWatermark(context=0)


def test_green_fraction_is_gamma_over_the_vocabulary() -> None:
    vocab = np.arange(50_000)
    for gamma in (0.25, 0.5):
        frac = np.mean([green(context_seed(KEY, [c, c + 1]), vocab, gamma).mean() for c in range(20)])
        assert abs(frac - gamma) < 0.005
    a = green(context_seed(KEY, [1, 2]), vocab, 0.25)
    assert (a != green(context_seed(KEY, [2, 1]), vocab, 0.25)).mean() > 0.3  # the context matters
    assert (a != green(context_seed(OTHER, [1, 2]), vocab, 0.25)).mean() > 0.3  # the key matters


def test_processor_adds_delta_to_green_logits_only(tiny_lm) -> None:  # type: ignore[no-untyped-def]
    import torch

    ctx = DefenseContext(account="a", cohort="c", prompt="", endpoint="", model="m", key=KEY)
    proc = LogitWatermark(delta=3.0, context=2, min_prob=0, protect_numbers=False).processor(ctx, tiny_lm.tokenizer)
    scores = torch.zeros(1, 400)
    out = proc(torch.tensor([[5, 9, 17]]), scores)
    count = green_count(KEY, [9, 17], np.arange(400), GAMMA, LISTS)  # the same keyed function as detection
    assert torch.equal(out[0], torch.from_numpy(count * 3.0).float())
    assert len(np.unique(count)) >= LISTS - 1  # a bias per list the token is green in, not one level
    assert torch.equal(proc(torch.tensor([[5]]), scores), scores)  # fewer than h tokens: untouched
    one = LogitWatermark(delta=3.0, context=2, min_prob=0, protect_numbers=False, lists=1).processor(
        ctx, tiny_lm.tokenizer
    )
    plain = green(context_seed(KEY, [9, 17]), np.arange(400), GAMMA)  # one list: Kirchenbauer et al.'s rule
    assert torch.equal(one(torch.tensor([[5, 9, 17]]), scores)[0], torch.from_numpy(plain * 3.0).float())


def test_green_lists_are_independent_so_counts_are_binomial() -> None:
    from scipy.stats import chisquare

    vocab = np.arange(2000)
    counts = np.concatenate([green_count(KEY, [c, c + 7], vocab, GAMMA, LISTS) for c in range(20)])
    observed = np.bincount(counts, minlength=LISTS + 1)
    expected = binom.pmf(np.arange(LISTS + 1), LISTS, GAMMA) * len(counts)
    assert chisquare(observed, expected).pvalue > 0.001  # Binomial(m, gamma) per (context, token)
    assert np.array_equal(
        green_count(KEY, [3, 4], vocab, GAMMA, 1), green(context_seed(KEY, [3, 4]), vocab, GAMMA).astype(int)
    )  # list 0 is the plain list
    assert np.array_equal(
        green_count_list(KEY, [3, 4], 2000, GAMMA, LISTS), green_count(KEY, [3, 4], vocab, GAMMA, LISTS)
    )
    with pytest.raises(ValueError):
        LogitWatermark(lists=0)


@settings(max_examples=60, deadline=None)
@given(
    key=st.binary(min_size=1, max_size=80),
    windows=st.lists(
        st.tuples(st.lists(st.integers(0, 2**40), min_size=1, max_size=6).map(tuple), st.integers(0, 2**31)),
        max_size=30,
    ),
    lists=st.integers(1, 64),
    gamma=st.sampled_from([0.25, 0.5, 0.9]),
)
def test_detection_counts_every_window_as_generation_does(
    key: bytes, windows: list[tuple[tuple[int, ...], int]], lists: int, gamma: float
) -> None:
    """Detection scores all windows at once (window_counts); each count is the keyed function's, one at a time."""
    one_by_one = [int(green_count(key, c, np.array([t]), gamma, lists)[0]) for c, t in windows]
    assert window_counts(key, windows, gamma, lists).tolist() == one_by_one


def test_detection_finds_its_key_and_only_its_key(tiny_lm) -> None:  # type: ignore[no-untyped-def]
    for seed in range(3):
        marked = generate(tiny_lm, seed, KEY)
        assert detect_tokens(marked.token_ids, KEY).p_value < 1e-8
        assert detect_tokens(marked.token_ids, OTHER).p_value > 1e-4
        clean = generate(tiny_lm, seed, KEY, n=200, clean=True)
        assert detect_text(clean.text, tiny_lm.tokenizer, KEY).p_value < 1e-6  # from the text alone
        assert detect_text(clean.text, tiny_lm.tokenizer, OTHER).p_value > 1e-4


def test_unwatermarked_p_values_are_uniform_and_exact(tiny_lm) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    ps, pr = [], []
    for _i in range(300):
        toks = rng.integers(0, 400, size=60)
        r = detect_tokens(toks, KEY, context=2)
        n = len(windows(toks, 2))
        assert r.n_scored == n and r.n_trials == n * LISTS
        x = sum(int(green_count(KEY, c, np.array([t]), GAMMA, LISTS)[0]) for c, t in windows(toks, 2))
        assert r.n_green == x and r.p_value == binom.sf(x - 1, n * LISTS, GAMMA)  # exact binomial tail
        ps.append(r.p_value)
        pr.append(r.p_randomized)
    assert min(ps) > 1e-4
    assert kstest(pr, "uniform").pvalue > 0.01
    plain = [detect_tokens(generate(tiny_lm, s, None, n=60).token_ids, KEY, context=2).p_value for s in range(5)]
    assert min(plain) > 1e-4


def test_repeated_windows_are_scored_once() -> None:
    once = detect_tokens([1, 2, 3, 4, 5], KEY, context=2)
    many = detect_tokens([1, 2, 3, 4, 5] * 20, KEY, context=2)
    assert once.n_scored == 3
    assert many.n_scored == len({(a, b) for a, b in zip(([1, 2, 3, 4, 5] * 20), ([1, 2, 3, 4, 5] * 20)[1:])})
    assert many.n_scored <= 5  # one window per distinct context, however often it repeats


def test_each_context_is_represented_by_its_most_frequent_token() -> None:
    from cuirass.marks.logit.detect import corpus_windows

    texts = [[1, 2, 7], [1, 2, 8], [1, 2, 8], [3, 4, 9]]
    assert corpus_windows(texts, 2) == [((1, 2), 8), ((3, 4), 9)]
    assert corpus_windows([[1, 2, 7], [1, 2, 8]], 2) == [((1, 2), 7)]  # a tie: the first seen


def test_responder_plans_logit_processors_keyed_per_cohort(tiny_lm) -> None:  # type: ignore[no-untyped-def]
    import torch

    from cuirass.keyring import Keyring
    from cuirass.respond.policy import PolicyConfig
    from cuirass.respond.responder import Responder

    ring = Keyring(b"m" * 32, 16)
    cfg = PolicyConfig(
        default_actions=["logit_watermark"],
        options={"logit_watermark": {"delta": 5.0, "context": 2, "min_prob": 0, "protect_numbers": False}},
    )
    r = Responder(cfg, ring)
    d = r.decide(account="acc", org=None, allowlisted=False, model="m", verdict=None)
    plan = r.plan(d, account="acc", model="m", endpoint="/v1/completions", prompt="p", verdict=None)
    assert plan.actions == ("logit_watermark",) and plan.rewrite is None and len(plan.processors) == 1
    proc = plan.processors[0](tiny_lm.tokenizer)
    out = proc(torch.tensor([[3, 4]]), torch.zeros(1, 400))
    key = ring.key("logit_watermark", ring.cohort_of("acc"))
    assert torch.equal(out[0], torch.from_numpy(green_count_list(key, [3, 4], 400, GAMMA, LISTS) * 5.0))
    r = Responder(PolicyConfig(default_actions=["antidistill"]), ring)
    d = r.decide(account="acc", org=None, allowlisted=False, model="m", verdict=None)
    plan = r.plan(d, account="acc", model="m", endpoint="/v1/completions", prompt="p", verdict=None)
    assert plan.actions == ("antidistill",) and len(plan.processors) == 1  # built lazily, by the engine


def test_processor_works_on_a_batch_like_hf_generate() -> None:
    import torch

    from cuirass.respond.logit.watermark import GreenListProcessor

    proc = GreenListProcessor(KEY, 0.25, 2.0, 2)
    out = proc(torch.tensor([[1, 2, 3], [7, 8, 9]]), torch.zeros(2, 50))
    for row, ctx in zip(out, ([2, 3], [8, 9]), strict=True):
        assert torch.equal(row, torch.from_numpy(green_count_list(KEY, ctx, 50, 0.25, LISTS) * 2.0))


def test_corpus_scores_each_window_once_across_texts() -> None:
    from cuirass.marks.logit.detect import detect_corpus

    a, b = [1, 2, 3, 4, 5, 6], [9, 8, 7, 6]
    one = detect_tokens(a, KEY)
    both = detect_corpus([a, b, a], KEY)
    assert both.n_scored == one.n_scored + detect_tokens(b, KEY).n_scored
    assert both.n_green == one.n_green + detect_tokens(b, KEY).n_green


def test_entropy_gate_marks_and_scores_only_uncertain_steps(tiny_lm) -> None:  # type: ignore[no-untyped-def]
    import torch

    from cuirass.marks.logit.entropy import EntropyGate

    ctx = DefenseContext(account="a", cohort="c", prompt="", endpoint="", model="m", key=KEY)
    proc = LogitWatermark(delta=3.0, context=2, min_entropy=0.5, min_prob=0).processor(ctx, tiny_lm.tokenizer)
    sure = torch.full((1, 400), -30.0)
    sure[0, 7] = 0.0  # the model is certain: a digit the answer needs
    assert torch.equal(proc(torch.tensor([[5, 9, 17]]), sure), sure)
    flat = torch.zeros(1, 400)
    assert not torch.equal(proc(torch.tensor([[5, 9, 17]]), flat), flat)

    ids = generate(tiny_lm, 0, KEY, n=40).token_ids
    prompt = tiny_lm.tokenizer.encode("the answer is")
    keep = EntropyGate(tiny_lm.model, 0.5).keep(prompt, ids)
    assert len(keep) == len(ids) and all(keep)  # a random model is unsure everywhere
    none = EntropyGate(tiny_lm.model, 1e9).keep(prompt, ids)
    assert not any(none)
    assert detect_tokens(ids, KEY, context=2, keep=none).n_scored == 0
    half = [i % 2 == 0 for i in range(len(ids))]
    assert detect_tokens(ids, KEY, context=2, keep=half).n_scored == len(
        {(tuple(ids[i - 2 : i]), ids[i]) for i in range(2, len(ids)) if i % 2 == 0}
    )


def test_only_plausible_non_number_tokens_are_boosted(tiny_lm) -> None:  # type: ignore[no-untyped-def]
    import torch

    from cuirass.marks.logit.entropy import number_tokens

    ctx = DefenseContext(account="a", cohort="c", prompt="", endpoint="", model="m", key=KEY)
    proc = LogitWatermark(delta=3.0, context=2, min_prob=0.02).processor(ctx, tiny_lm.tokenizer)
    scores = torch.full((1, 400), -20.0)
    scores[0, :40] = 0.0  # 40 plausible candidates (2.5% each), the rest negligible
    boosted = (proc(torch.tensor([[5, 9, 17]]), scores) - scores)[0] > 0
    green_ids = set(np.flatnonzero(green_count(KEY, [9, 17], np.arange(400), GAMMA, LISTS)).tolist())
    digits = number_tokens(tiny_lm.tokenizer)
    assert digits and all(any(c.isdigit() for c in tiny_lm.tokenizer.decode([t])) for t in digits)
    assert set(np.flatnonzero(boosted.numpy()).tolist()) == {t for t in range(40) if t in green_ids and t not in digits}
