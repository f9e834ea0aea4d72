"""The one keyed function of the logit watermark, shared by generation and detection.

    s(key, ctx)        = BLAKE2b-64(key=key, person="cuirass-lwm-v1", data=ctx)   ctx: previous h token ids
    u(key, ctx, t)     = splitmix64(s + (t + 1) * 0x9E3779B97F4A7C15)              (mod 2^64)
    green(key, ctx, t) = u < floor(gamma * 2^64)

This is the green list of Kirchenbauer et al., 2023 ("A Watermark for Large Language Models",
arXiv:2301.10226, Algorithm 2 with a left-hash context of h tokens): the previous h tokens seed a
keyed pseudo-random split of the vocabulary into a green fraction gamma and the rest. Instead of
seeding a permutation of the vocabulary (the reference implementation's torch.randperm), each token
id gets its own keyed uniform number: splitmix64 (Steele, Lea & Flood, 2014, the SplittableRandom
mixer) of position t in the stream seeded by s. Generation computes it for the whole vocabulary as
one vectorised numpy pass; detection computes it for just the observed token. Under H0 (a text
written without the key) each distinct (ctx, token) pair is green with probability gamma, so the
green count over distinct pairs is Binomial(n, gamma) (see detect.py).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence

import numpy as np

GAMMA = 0.25  # green fraction of the vocabulary (Kirchenbauer et al. use 0.25 and 0.5)
DELTA = 4.0  # logit bias added to green tokens (only plausible ones: see watermark.py)
CONTEXT = 4  # h: previous tokens that seed the green list (more distinct windows in templated text than h=2)
MIN_PROB = 0.02  # only tokens the model gives at least this probability are boosted
MIN_ENTROPY = 0.5  # nats: steps where the model is surer than this are neither marked nor scored (SWEET)
_PERSON = b"cuirass-lwm-v1"
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def context_seed(key: bytes, context: Sequence[int]) -> int:
    """s(key, ctx): 64 keyed pseudo-random bits for the previous h token ids."""
    data = np.asarray(context, dtype="<i8").tobytes()
    return int.from_bytes(hashlib.blake2b(data, digest_size=8, key=key[:64], person=_PERSON).digest(), "little")


def _u(seed: int, offsets: np.ndarray) -> np.ndarray:
    """u for offsets (t + 1) * φ64: the splitmix64 output function, in place on a fresh uint64 array."""
    with np.errstate(over="ignore"):
        x = offsets + np.uint64(seed)
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
    with np.errstate(over="ignore"):
        return (np.arange(width, dtype=np.uint64) + np.uint64(1)) * _GOLDEN


def green(seed: int, token_ids: np.ndarray, gamma: float) -> np.ndarray:
    """green(key, ctx, t) for an array of token ids t, given seed = context_seed(key, ctx)."""
    with np.errstate(over="ignore"):
        offsets = (np.asarray(token_ids, dtype=np.uint64) + np.uint64(1)) * _GOLDEN
    return _u(seed, offsets) < threshold(gamma)


def green_list(seed: int, vocab_size: int, gamma: float) -> np.ndarray:
    """green(key, ctx, t) for every t < vocab_size: the generation side (same numbers as `green`)."""
    return _u(seed, _vocab_offsets(vocab_size)) < threshold(gamma)
