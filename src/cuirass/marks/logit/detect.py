"""Detect the logit watermark: an exact binomial p-value per key.

    pairs  = one (previous h tokens, token) window per distinct context of the re-tokenised text(s): the
             token written most often after that context (ties: the first seen), counting only the steps
             the entropy gate keeps (entropy.py; all steps when no gate is given)
    X      = sum over the pairs of count(key, ctx, token), the green lists the token is in (keyed.py);
             n = number of pairs, m = lists
    H0 (text written without the key): X ~ Binomial(m * n, gamma)
    p      = P(X >= x | H0) = binom.sf(x - 1, m * n, gamma)                     (exact)
    p_rand = P(X > x) + U * P(X = x), U ~ Uniform(0, 1) keyed on the tokens      (exactly uniform under H0)

Scoring each context once (Fernandez et al., 2023, "Three Bricks to Consolidate Watermarks for LLMs",
sec. 4, deduplicate the scored windows) keeps the trials independent when a text repeats itself;
without it repeated n-grams inflate X and the p-value is no longer valid. Distinct contexts seed
independent green lists, and which token represents a context is chosen from the text alone, never
from the key, so under H0 each representative is green in each list with probability gamma,
independently (distinct seeds): the Binomial null is exact. Taking the most frequent token (rather than every distinct pair once) keeps the
signal of a model that *prefers* green continuations: over many answers a watermarked model, or a
student trained on one, also writes the red alternatives now and then, and counting every distinct
pair once would score them as often as the green ones. p is what evidence quotes; p_rand is for
calibration checks (a KS test on clean text), as in the text watermark's detect.py.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.stats import binom

from cuirass.marks.logit.entropy import EntropyGate
from cuirass.marks.logit.keyed import CONTEXT, GAMMA, LISTS, window_counts


@dataclasses.dataclass(frozen=True, slots=True)
class LogitWatermarkResult:
    p_value: float  # P(X >= n_green) under H0
    n_scored: int  # distinct (context, token) windows
    n_green: int  # green memberships over the windows, out of n_trials
    p_randomized: float
    gamma: float
    lists: int = 1

    @property
    def n_trials(self) -> int:
        """The Binomial's n: one trial per window and list."""
        return self.n_scored * self.lists

    @property
    def z(self) -> float:
        if self.n_scored == 0:
            return 0.0
        g, n = self.gamma, self.n_trials
        return (self.n_green - g * n) / math.sqrt(n * g * (1 - g))


def windows(
    token_ids: Sequence[int], context: int = CONTEXT, keep: Sequence[bool] | None = None
) -> list[tuple[tuple[int, ...], int]]:
    """One (context, modal token) window per distinct context, first occurrence order; positions with keep[i]."""
    return corpus_windows([token_ids], context, None if keep is None else [keep])


def corpus_windows(
    token_lists: Sequence[Sequence[int]], context: int = CONTEXT, keeps: Sequence[Sequence[bool] | None] | None = None
) -> list[tuple[tuple[int, ...], int]]:
    """`windows` over several texts at once: a context seen in many texts still counts once."""
    counts: dict[tuple[int, ...], dict[int, int]] = {}
    for j, token_ids in enumerate(token_lists):
        ids = [int(t) for t in token_ids]
        keep = None if keeps is None else keeps[j]
        for i in range(context, len(ids)):
            if keep is None or keep[i]:
                after = counts.setdefault(tuple(ids[i - context : i]), {})
                after[ids[i]] = after.get(ids[i], 0) + 1
    # max() returns the first maximal item and dicts keep insertion order: ties go to the first seen
    return [(ctx, max(after, key=after.__getitem__)) for ctx, after in counts.items()]


def detect_tokens(
    token_ids: Sequence[int],
    key: bytes,
    gamma: float = GAMMA,
    context: int = CONTEXT,
    keep: Sequence[bool] | None = None,
    lists: int = LISTS,
) -> LogitWatermarkResult:
    """Whether these token ids carry the watermark of `key` (`keep`: the entropy gate's verdict per token)."""
    return score_windows(windows(token_ids, context, keep), key, gamma, lists, salt(token_ids))


def detect_corpus(
    token_lists: Sequence[Sequence[int]],
    key: bytes,
    gamma: float = GAMMA,
    context: int = CONTEXT,
    keeps: Sequence[Sequence[bool]] | None = None,
    lists: int = LISTS,
) -> LogitWatermarkResult:
    """One p-value for many texts (e.g. the answers one cohort harvested): each window counts once overall."""
    ws = corpus_windows(token_lists, context, keeps)
    return score_windows(ws, key, gamma, lists, salt([t for c, tok in ws for t in (*c, tok)]))


def salt(token_ids: Sequence[int]) -> bytes:
    """Identifies the scored text (seeds the randomized p-value only)."""
    return hashlib.sha256(np.asarray(token_ids, dtype="<i8").tobytes()).digest()


def score_windows(
    ws: Sequence[tuple[tuple[int, ...], int]], key: bytes, gamma: float, lists: int, digest: bytes
) -> LogitWatermarkResult:
    """The exact binomial test of `ws` under `key` (`digest`: what the randomized p-value is keyed on)."""
    x = int(window_counts(key, ws, gamma, lists).sum()) if ws else 0
    n = len(ws) * lists
    ge, gt = float(binom.sf(x - 1, n, gamma)), float(binom.sf(x, n, gamma))
    u = int.from_bytes(hashlib.blake2b(b"p|" + digest, digest_size=8, key=key[:64]).digest(), "big") / 2**64
    return LogitWatermarkResult(ge, len(ws), x, gt + u * (ge - gt), gamma, lists)


def detect_text(
    text: str,
    tokenizer: Any,
    key: bytes,
    gamma: float = GAMMA,
    context: int = CONTEXT,
    gate: EntropyGate | None = None,
    prompt_ids: Sequence[int] = (),
    lists: int = LISTS,
) -> LogitWatermarkResult:
    """Re-tokenise `text` with the model's tokenizer and score it; with a gate, only the steps it keeps
    (the prompt's token ids, when known, make the gate's entropies those of generation)."""
    ids = tokenizer.encode(text, add_special_tokens=False)
    return detect_tokens(ids, key, gamma, context, None if gate is None else gate.keep(prompt_ids, ids), lists)
