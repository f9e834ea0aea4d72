"""The one keyed function of the logit watermark, shared by generation and detection.

    s_j(key, ctx)        = BLAKE2b-64(key=key, person="cuirass-lwm-v1" + [byte j if j > 0], data=ctx)
                                                                   ctx: previous h token ids, j < lists
    u_j(key, ctx, t)     = splitmix64(s_j + (t + 1) * 0x9E3779B97F4A7C15)          (mod 2^64)
    green_j(key, ctx, t) = u_j < floor(gamma * 2^64)
    count(key, ctx, t)   = sum_j green_j(key, ctx, t)                            (0 .. lists)

This is the green list of Kirchenbauer et al., 2023 ("A Watermark for Large Language Models",
arXiv:2301.10226, Algorithm 2 with a left-hash context of h tokens): the previous h tokens seed a
keyed pseudo-random split of the vocabulary into a green fraction gamma and the rest. Instead of
seeding a permutation of the vocabulary (the reference implementation's torch.randperm), each token
id gets its own keyed uniform number: splitmix64 (Steele, Lea & Flood, 2014, the SplittableRandom
mixer) of position t in the stream seeded by s. Generation computes it for the whole vocabulary as
one vectorised numpy pass; detection computes it for just the observed token.

Several green lists per context (`lists` = m, each from its own personalised seed) are our extension of
the one-list scheme: generation adds delta once per list a token is green in, so among the tokens the
model finds plausible it favours the one green in most lists, and detection counts memberships. One
list can only say green or red, i.e. at most one bit per window however many good continuations the
model had; with m lists the count of the chosen token rises with the number of candidates (the best of
k tokens' Binomial(m, gamma) counts), so the windows where the model had many good choices carry more
evidence, much as in the exponential-minimum scheme (Aaronson, 2022) but with an exact binomial null.
Under H0 (a text written without the key) the m memberships of each distinct (ctx, token) pair are
independent Bernoulli(gamma) draws, so the count over n distinct pairs is Binomial(m * n, gamma)
(see detect.py). Measured (BENCHMARKS.md, 1,000 problems): on the previous reference model, the share of
>= 200-token outputs detected at p < 1e-6 went from 13% (one list, gamma 0.25, delta 4) to 38% (eight
lists, gamma 0.5, delta 3 per list); on the current one, whose answers have more free choices, it is 98%.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence

import numpy as np

GAMMA = 0.5  # green fraction of the vocabulary per list (Kirchenbauer et al. use 0.25 and 0.5)
DELTA = 3.0  # logit bias added per list a token is green in (only plausible tokens: see watermark.py)
LISTS = 8  # m, green lists per context
CONTEXT = 4  # h: previous tokens that seed the green list (more distinct windows in templated text than h=2)
MIN_PROB = 0.02  # only tokens the model gives at least this probability are boosted
MIN_ENTROPY = 0.5  # nats: steps where the model is surer than this are neither marked nor scored (SWEET)
_PERSON = b"cuirass-lwm-v1"
MAX_LISTS = 64
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def _seed_hash(key: bytes, j: int) -> hashlib.blake2b:
    """The BLAKE2b state of s_j keyed and personalised, before any context: copy it, then feed a context."""
    return hashlib.blake2b(digest_size=8, key=key[:64], person=_PERSON + (bytes([j]) if j else b""))


def _context_bytes(context: Sequence[int]) -> bytes:
    return np.asarray(context, dtype="<i8").tobytes()


def context_seed(key: bytes, context: Sequence[int], j: int = 0) -> int:
    """s_j(key, ctx): 64 keyed pseudo-random bits for the previous h token ids, for green list j."""
    h = _seed_hash(key, j)
    h.update(_context_bytes(context))
    return int.from_bytes(h.digest(), "little")


def check_lists(lists: int) -> int:
    if not 1 <= lists <= MAX_LISTS:
        raise ValueError(f"lists must be in 1..{MAX_LISTS}")
    return lists


def _u(seed: int | np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """u for offsets (t + 1) * φ64: the splitmix64 output function, in place on a fresh uint64 array (a column
    of seeds gives one row per seed)."""
    with np.errstate(over="ignore"):
        x = offsets + (np.uint64(seed) if isinstance(seed, int) else seed)
        x ^= x >> np.uint64(30)
        x *= _M1
        x ^= x >> np.uint64(27)
        x *= _M2
        x ^= x >> np.uint64(31)
    return x


def threshold(gamma: float) -> np.uint64:
    if not 0.0 < gamma < 1.0:
        raise ValueError("gamma must be in (0, 1)")
    return np.uint64(min(int(gamma * 2**64), 2**64 - 1))


@functools.lru_cache(maxsize=8)
def _vocab_offsets(width: int) -> np.ndarray:
    return _offsets(np.arange(width))


def _offsets(token_ids: np.ndarray) -> np.ndarray:
    """(t + 1) * φ64 for each token id t (mod 2^64)."""
    with np.errstate(over="ignore"):
        return (np.asarray(token_ids, dtype=np.uint64) + np.uint64(1)) * _GOLDEN


def green(seed: int, token_ids: np.ndarray, gamma: float) -> np.ndarray:
    """green(key, ctx, t) for an array of token ids t, given seed = context_seed(key, ctx) (list 0)."""
    return _u(seed, _offsets(token_ids)) < threshold(gamma)


def _count(key: bytes, context: Sequence[int], offsets: np.ndarray, gamma: float, lists: int) -> np.ndarray:
    """count for the tokens behind `offsets`: all lists in one vectorised pass, one row per list."""
    seeds = np.array([[context_seed(key, context, j)] for j in range(lists)], dtype=np.uint64)
    counts: np.ndarray = (_u(seeds, offsets[None, :]) < threshold(gamma)).sum(axis=0)
    return counts


def green_count(key: bytes, context: Sequence[int], token_ids: np.ndarray, gamma: float, lists: int) -> np.ndarray:
    """count(key, ctx, t) for an array of token ids t: in how many of the `lists` green lists each one is."""
    offsets = _offsets(np.reshape(token_ids, -1))
    return _count(key, context, offsets, gamma, lists).astype(np.int64).reshape(np.shape(token_ids))


def window_counts(key: bytes, windows: Sequence[tuple[Sequence[int], int]], gamma: float, lists: int) -> np.ndarray:
    """count(key, ctx, t) for each window (ctx, t): the same numbers as `green_count` one window at a time, with
    one BLAKE2b state per list keyed once and copied per window, and one vectorised pass over all the seeds."""
    keyed = [_seed_hash(key, j) for j in range(lists)]
    digests = []
    for context, _ in windows:
        data = _context_bytes(context)
        for state in keyed:
            h = state.copy()
            h.update(data)
            digests.append(h.digest())
    seeds = np.frombuffer(b"".join(digests), dtype="<u8").astype(np.uint64).reshape(len(windows), lists)
    offsets = _offsets(np.array([t for _, t in windows], dtype=np.int64))
    counts: np.ndarray = (_u(seeds, offsets[:, None]) < threshold(gamma)).sum(axis=1)
    return counts


def green_count_list(key: bytes, context: Sequence[int], vocab_size: int, gamma: float, lists: int) -> np.ndarray:
    """count(key, ctx, t) for every t < vocab_size: the generation side (same numbers as `green_count`)."""
    return _count(key, context, _vocab_offsets(vocab_size), gamma, lists).astype(np.float32)
