"""The token channel, pooled over a corpus, with a stand-in tokenizer (one id per character)."""

from __future__ import annotations

import hashlib

import numpy as np
from scipy.stats import binom

from cuirass.marks.logit.keyed import CONTEXT, GAMMA, LISTS, green_count
from cuirass.prove.channels import TokenChannel
from cuirass.prove.correction import holm

ALPHABET = "abcdefghijklmnopqrstuvwxyz "


class CharTokenizer:
    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return [ord(c) for c in text]


def _green_text(key: bytes, seed: int, length: int = 200) -> str:
    """Text whose every character after the context is the one green in most lists under `key` (a perfect
    watermark: what a large delta makes of a model that finds every character equally good)."""
    rng = np.random.default_rng(seed)
    out = list(rng.choice(list(ALPHABET), CONTEXT))
    while len(out) < length:
        ctx = [ord(c) for c in out[-CONTEXT:]]
        cands = rng.permutation(list(ALPHABET))
        count = green_count(key, ctx, np.array([ord(c) for c in cands]), GAMMA, LISTS)
        out.append(cands[int(np.argmax(count))])
    return "".join(out)


def test_token_channel_implicates_the_key_and_p_values_are_exact() -> None:
    keys = [hashlib.sha256(b"tok%d" % i).digest() for i in range(10)]
    rng = np.random.default_rng(1)
    clean = ["".join(rng.choice(list(ALPHABET), 200)) for _ in range(10)]
    marked = [_green_text(keys[3], s) for s in range(10)]
    ch = TokenChannel(CharTokenizer())
    hit = ch.score(marked, keys)
    assert np.argmin([s.p_value for s in hit]) == 3 and hit[3].p_value < 1e-20
    q = holm([s.p_value for s in hit])
    assert [i for i, x in enumerate(q) if x < 0.01] == [3]
    null = ch.score(clean, keys)
    assert min(holm([s.p_value for s in null])) > 0.01
    for s in null + hit:
        assert s.gamma == GAMMA and s.n_scored == LISTS * s.n_windows
        assert s.p_value == binom.sf(s.n_green - 1, s.n_scored, GAMMA)
