"""The one keyed function of the text watermark, shared by embedding and detection.

    bits(key, window) = BLAKE2b(key=key, person="cuirass-wm-v1", data="w" || window)   (64 bits)

A choice point with k variants is scored as b = ceil(log2 k) binary units; unit j is *green* when
bit j of the variant index the text uses equals bit j of bits(key, window). The embedder rewrites
each choice to the variant with the most green units (all of them when k is a power of two).

Why the null is exact (the green-list idea of Kirchenbauer et al., 2023, "A Watermark for Large
Language Models", moved from tokens to lexical choices, as in the black-box substitution watermark
of Yang et al., 2023, arXiv:2305.08883): keyed BLAKE2b is a pseudo-random function, so for a text
written without the key, bits(key, w) over distinct windows w are independent uniform strings that
do not depend on the text. The variant v the text uses is fixed before the key is drawn, so
P(bit j of bits = bit j of v) = 1/2 exactly, independently over (window, j), *whatever the natural
frequency of the variants* ("don't" may be far more common than "do not": it does not matter,
because green is a coin flip against a fixed choice, not a property of the word). Counting each
window once (Fernandez et al., 2023, "Three Bricks to Consolidate Watermarks for LLMs") keeps the
units independent when a text repeats itself. Hence the number of green units X ~ Binomial(n, 1/2).
"""

from __future__ import annotations

import hashlib

GAMMA = 0.5  # P(unit green | no watermark): fixed by construction, one bit of a keyed hash per unit
_PERSON = b"cuirass-wm-v1"


def window_bits(key: bytes, window: str) -> int:
    """64 keyed pseudo-random bits for one window."""
    h = hashlib.blake2b(b"w" + window.encode(), key=key[:64], digest_size=8, person=_PERSON)
    return int.from_bytes(h.digest(), "big")


def keyed_uniform(key: bytes, label: bytes) -> float:
    """A keyed pseudo-random number in [0, 1), independent of every window's bits (other domain)."""
    h = hashlib.blake2b(b"u" + label, key=key[:64], digest_size=8, person=_PERSON)
    return (int.from_bytes(h.digest(), "big") >> 11) / 2.0**53


def n_units(k: int) -> int:
    """Binary units a k-way choice is scored as: ceil(log2 k)."""
    return (k - 1).bit_length()


def n_green(bits: int, variant: int, k: int) -> int:
    """Green units of a choice that uses `variant`."""
    agree = ~(bits ^ variant)
    return sum((agree >> j) & 1 for j in range(n_units(k)))


def preferred(bits: int, k: int, current: int) -> int:
    """The variant with the most green units; ties keep the current one (fewest edits), else the first."""
    best = max(n_green(bits, v, k) for v in range(k))
    if n_green(bits, current, k) == best:
        return current
    return next(v for v in range(k) if n_green(bits, v, k) == best)
