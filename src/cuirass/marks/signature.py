"""A signature a student cannot help learning: the lead-in of the final-answer sentence, keyed by the prompt.

The text and token watermarks key each choice on the words just before it, so every answer carries many
choices but each context is rare: a student sees each one a few times and does not reproduce the keyed
preference (the distillation lab measured it: harvests marked at p < 1e-70, students barely). This mark
turns that around, for flagged traffic only: one choice per answer, in the sentence a checker reads the
final answer from ("The answer is 42."), keyed on a context that repeats across thousands of answers, the
prompt's last word ("... how many apples does she have now?" -> "now"). A distiller's student sees the same
context with the same keyed lead-in again and again, and learns "after a question ending in *now*, say
*Hence the answer is*" like any other habit of its teacher. Radioactivity, in the sense of Sander et al.
2024 (arXiv 2402.14904), bought by making the keyed context frequent; the keyed-signature idea follows
Antidistillation Fingerprinting (arXiv 2602.03812), which chooses marks for what a student learns.

The answer is kept: only the words before "answer is" change, the number and everything after it stay, so
a checker reads the same final answer under the same convention (`marks.answer`). An answer
whose final-answer sentence opens with words this module does not know is left alone.

Test (exact). For a key, each window w (prompt's last word) has a keyed variant v_k(w) = BLAKE2b(key, w)
mod K. A suspect is asked probe prompts; c_w[v] counts its answers in window w whose lead-in is variant v.
The statistic T = sum_w c_w[v_k(w)] counts answers that used their window's keyed lead-in. Under H0 (the
suspect never learned from text signed with this key) the key is independent of the suspect, so each
v_k(w) is uniform on the K variants and independent across windows: T is a sum of independent draws, one
uniform pick from each window's count vector, and its distribution is their exact convolution. Many
answers in one window share one keyed draw, which the convolution accounts for (no independence is
assumed between answers). p = P(T >= t) under that null.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from collections.abc import Iterable

import numpy as np

from cuirass.marks.answer import find_final_answer

# (what is written, its normalized form): the words before "answer is", K = 8 variants.
LEADS: tuple[tuple[str, str], ...] = (
    ("The", "the"),
    ("So the", "so the"),
    ("Therefore, the", "therefore the"),
    ("Thus the", "thus the"),
    ("Hence the", "hence the"),
    ("This means the", "this means the"),
    ("In the end, the", "in the end the"),
    ("All in all, the", "all in all the"),
)
K = len(LEADS)
_BY_FORM = {form: i for i, (_, form) in enumerate(LEADS)}
MAX_WORD = 32  # a window is at most this many letters (longer: its last MAX_WORD letters)


def window(prompt: str) -> str:
    """The prompt's last word, lower-cased letters only ("" if it has none); one backward scan."""
    end = len(prompt)
    while end > 0 and not prompt[end - 1].isalpha():
        end -= 1
    start = end
    while start > 0 and prompt[start - 1].isalpha() and end - start < MAX_WORD:
        start -= 1
    return prompt[start:end].lower()


def keyed(key: bytes, w: str) -> int:
    """The variant the key chooses for window w."""
    return hashlib.blake2b(w.encode(), key=key[:64], digest_size=8).digest()[0] % K


def _normalize(lead: str) -> str:
    return " ".join("".join(ch for ch in lead.lower() if ch.isalpha() or ch.isspace()).split())


def _lead_span(text: str) -> tuple[int, int, int] | None:
    """(start, end, variant) of the lead-in of the final-answer sentence, when it is one of LEADS."""
    fa = find_final_answer(text)
    if fa is None or fa.convention != "answer_is":
        return None
    sentence = text[fa.protected_start : fa.start]
    at = sentence.lower().rfind("answer")
    if at < 0:
        return None
    variant = _BY_FORM.get(_normalize(sentence[:at]))
    if variant is None:
        return None
    return fa.protected_start, fa.protected_start + at, variant


def read(text: str) -> int | None:
    """The lead-in variant of an answer's final-answer sentence, or None (no such sentence, or an unknown
    lead-in: such answers are never counted, for any key)."""
    span = _lead_span(text)
    return None if span is None else span[2]


def embed(text: str, prompt: str, key: bytes) -> str:
    """`text` with its final-answer sentence opened by the lead-in the key chooses for the prompt's window
    (unchanged when the sentence opens with words this module does not know)."""
    span = _lead_span(text)
    if span is None:
        return text
    start, end, _ = span
    lead = LEADS[keyed(key, window(prompt))][0]
    return text[:start] + lead + " " + text[end:]


@dataclasses.dataclass(frozen=True, slots=True)
class SignatureScore:
    n_answers: int  # answers with a known lead-in (the others are never counted)
    n_windows: int
    hits: int  # T: answers that used their window's keyed lead-in
    expected: float  # E[T] under H0
    p_value: float  # exact P(T >= hits) under H0
    p_randomized: float  # P(T > hits) + u P(T = hits): exactly Uniform(0, 1) under H0, for u uniform


def counts(pairs: Iterable[tuple[str, str]]) -> dict[str, np.ndarray]:
    """Per window, how many answers used each lead-in variant, from (prompt, answer) pairs."""
    out: dict[str, np.ndarray] = {}
    for prompt, answer in pairs:
        v = read(answer)
        if v is not None:
            out.setdefault(window(prompt), np.zeros(K, dtype=np.int64))[v] += 1
    return out


def null_distribution(by_window: Iterable[np.ndarray]) -> np.ndarray:
    """P(T = t) for t = 0, 1, ...: T sums one uniform pick from each window's count vector (convolution)."""
    dist = np.ones(1)
    for c in by_window:
        step = np.zeros(int(c.max()) + 1)
        np.add.at(step, c, 1.0 / K)
        dist = np.convolve(dist, step)
    return dist


def tail(dist: np.ndarray, t: int) -> float:
    """P(T >= t) from the null distribution `dist` (P(T = 0), P(T = 1), ...)."""
    return float(min(1.0, dist[t:].sum())) if t < len(dist) else 0.0


def null_tail(by_window: Iterable[np.ndarray], hits: int) -> float:
    """Exact P(T >= hits) under H0."""
    return tail(null_distribution(by_window), hits)


def score(
    by_window: dict[str, np.ndarray], key: bytes, u: float = 0.5, dist: np.ndarray | None = None
) -> SignatureScore:
    """The exact test of one key against the suspect's answers (`counts`); `u` in [0, 1) randomizes ties
    for `p_randomized` (the audit derives it from the corpus, so a rerun gives the same number). The null
    depends on the answers, not on the key: pass `dist` (`null_distribution` of `by_window`) to score many
    keys against one corpus without convolving it again for each."""
    hits = sum(int(c[keyed(key, w)]) for w, c in by_window.items())
    total = sum(int(c.sum()) for c in by_window.values())
    dist = null_distribution(by_window.values()) if dist is None else dist
    above = tail(dist, hits + 1)
    at = float(dist[hits]) if hits < len(dist) else 0.0
    return SignatureScore(total, len(by_window), hits, total / K, min(1.0, above + at), min(1.0, above + u * at))


@dataclasses.dataclass(frozen=True, slots=True)
class RankScore:
    n_windows: int
    rank_sum: int  # R: the keyed variants' ranks summed over the windows
    z: float  # (R - E[R]) / sd(R) under H0
    p_value: float  # exact P(R >= r) under H0
    p_randomized: float  # P(R > r) + u P(R = r): exactly Uniform(0, 1) under H0


@functools.lru_cache(maxsize=8)
def _rank_null(n: int) -> np.ndarray:
    """P(R = r) for a sum of n independent uniforms on 0..K-1 (one per window; the same for every key)."""
    dist = np.ones(1)
    for _ in range(n):
        dist = np.convolve(dist, np.full(K, 1.0 / K))
    return dist


def rank_score(scores: dict[str, np.ndarray], key: bytes, u: float = 0.5) -> RankScore:
    """The test with the suspect's likelihoods (its weights, or top logprobs from its API): per window, a
    score for each of the K lead-ins (e.g. their summed log-probabilities at the final-answer sentence of
    the window's probes). The keyed variant's rank in its window (0 = lowest; ties broken by variant
    order, which no key affects) is uniform on 0..K-1 under H0 and independent across windows, so R, the
    sum of the ranks, has the exact null of a sum of n independent discrete uniforms."""
    total = 0
    for w, s in scores.items():
        order = sorted(range(K), key=lambda v: (float(s[v]), v))
        total += order.index(keyed(key, w))
    n = len(scores)
    dist = _rank_null(n)
    above = tail(dist, total + 1)
    at = float(dist[total]) if total < len(dist) else 0.0
    sd = (n * (K * K - 1) / 12) ** 0.5
    z = (total - n * (K - 1) / 2) / sd if n else 0.0
    return RankScore(n, total, z, min(1.0, above + at), min(1.0, above + u * at))


def rank_test(scores: dict[str, np.ndarray], key: bytes) -> tuple[int, float]:
    """(R, P(R >= r)) of `rank_score`."""
    r = rank_score(scores, key)
    return r.rank_sum, r.p_value
