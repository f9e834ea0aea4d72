"""The one keyed function of the text watermark, shared by embedding and detection.

    bits_0(key, window) = BLAKE2b(key=key, person="cuirass-wm-v1", data="w" || window)     (64 bits)
    bits_r(key, window) = BLAKE2b(key=key, person="cuirass-wm-v1", data="r<r>|" || window)  (r >= 1, rarely)
    green(key, window, k) = the first b-bit chunk c of bits_0, bits_1, ... (low bits first) with c < k,
                            b = ceil(log2 k)

A choice point with k variants has exactly one green variant. The embedder rewrites it to that
variant; the detector counts windows whose variant is green. Rejection of chunks >= k makes the
green variant exactly uniform on {0, ..., k-1} (for k a power of two it is the low b bits, as in the
earlier bit-per-unit scheme, so texts watermarked with it keep their green choices).

Why the null is exact (the green-list idea of Kirchenbauer et al., 2023, "A Watermark for Large
Language Models", moved from tokens to lexical choices, as in the black-box substitution watermark
of Yang et al., 2023, arXiv:2305.08883): keyed BLAKE2b is a pseudo-random function, so for a text
written without the key, green(key, w, k) over distinct windows w are independent and uniform, and
they do not depend on the text. The variant v the text uses is fixed before the key is drawn, so
P(v = green) = 1/k exactly, independently over windows, *whatever the natural frequency of the
variants* ("don't" may be far more common than "do not": it does not matter, because green is a
keyed draw against a fixed choice, not a property of the word). Counting each window once
(Fernandez et al., 2023, "Three Bricks to Consolidate Watermarks for LLMs") keeps the windows
independent when a text repeats itself. A k-way choice then carries log2(k) bits: a green 4-way
choice is as strong as two green binary ones, and the embedder never has to leave one red.
"""

from __future__ import annotations

import hashlib

_PERSON = b"cuirass-wm-v1"


def window_bits(key: bytes, window: str, rehash: int = 0) -> int:
    """64 keyed pseudo-random bits for one window (`rehash` >= 1: further independent draws)."""
    prefix = b"w" if rehash == 0 else b"r%d|" % rehash
    h = hashlib.blake2b(prefix + window.encode(), key=key[:64], digest_size=8, person=_PERSON)
    return int.from_bytes(h.digest(), "big")


def keyed_uniform(key: bytes, label: bytes) -> float:
    """A keyed pseudo-random number in [0, 1), independent of every window's bits (other domain)."""
    h = hashlib.blake2b(b"u" + label, key=key[:64], digest_size=8, person=_PERSON)
    return (int.from_bytes(h.digest(), "big") >> 11) / 2.0**53


def green(key: bytes, window: str, k: int) -> int:
    """The green variant of a window with k variants: exactly uniform on {0, ..., k-1} over keys."""
    b = (k - 1).bit_length()
    if b == 0:
        return 0
    mask = (1 << b) - 1
    rehash = 0
    while True:
        bits = window_bits(key, window, rehash)
        for _ in range(64 // b):
            if (bits & mask) < k:
                return bits & mask
            bits >>= b
        rehash += 1  # every chunk was >= k: probability <= (1/2)^(64 // b), i.e. almost never
