"""Watermark channels an audit scores a corpus with: one small class each, registered by name.

A channel turns (corpus, keys) into one pooled count per key, (n scored units, n green), with a null
X ~ Binomial(n, gamma) that holds exactly for text written without that key. Each window (the context
that seeds the keyed hash) is scored once over the whole corpus, because a repeated window repeats its
green/red outcome and would break independence (Fernandez et al. 2023, arXiv:2308.00113, "Three Bricks
to Consolidate Watermarks for LLMs", sec. 4; Sander et al. 2024, arXiv:2402.14904, for the same test on
a suspect model's outputs). Then p = P(X >= x) = binom.sf(x - 1, n, gamma), exact.

Channels:
- `text`  the gateway's lexical watermark (cuirass.respond.watermark), keys of purpose "watermark".
- `token` the local engine's token-level watermark (cuirass.respond.logit), keys of purpose
          "logit_watermark", when a tokenizer is given.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import importlib.util
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from scipy.stats import binom

from cuirass.respond.watermark import merge, score_many, units
from cuirass.respond.watermark.choices import Finder


@dataclasses.dataclass(frozen=True, slots=True)
class ChannelScore:
    n_scored: int
    n_green: int
    n_windows: int
    gamma: float
    p_value: float  # exact: P(X >= n_green) under Binomial(n_scored, gamma)
    p_randomized: float  # exactly Uniform(0, 1) under H0 (for the control's uniformity check)


class Channel(Protocol):
    name: str
    purpose: str  # the keyring purpose of this channel's keys
    method: str  # one paragraph for the report

    def score(self, texts: Sequence[str], keys: Sequence[bytes]) -> list[ChannelScore]:
        """One pooled score per key, in key order."""
        ...


def corpus_digest(texts: Sequence[str]) -> bytes:
    """Identifies the scored corpus (seeds the randomized p-value only)."""
    h = hashlib.sha256()
    for t in texts:
        h.update(hashlib.sha256(t.encode()).digest())
    return h.digest()


class TextChannel:
    name = "text"
    purpose = "watermark"
    method = ("Lexical watermark (text level). Every choice point of every text (contraction, synonym, "
              "connective, spelling, hyphenation, serial comma) is a window (choice class | the two previous words that are not choice points); "
              "each distinct window of the corpus is scored once (first occurrence), as ceil(log2 k) binary "
              "units, green when they agree with BLAKE2b(key, window). Under H0 (text not written with the "
              "key) the keyed bits are independent coin flips against a choice fixed before the key, so "
              "X ~ Binomial(n, 1/2) exactly, whatever the natural frequency of each variant.")

    def __init__(self, finder: Finder | None = None) -> None:
        self.finder = finder

    def score(self, texts: Sequence[str], keys: Sequence[bytes]) -> list[ChannelScore]:
        pooled = merge(units(t, self.finder, stop=frozenset()) for t in texts)
        results = score_many(pooled, keys, salt=corpus_digest(texts))
        return [ChannelScore(r.n_scored, r.n_green, r.n_windows, r.gamma, r.p_value, r.p_randomized)
                for r in results]


class TokenChannel:
    """The local engine's token-level watermark (cuirass.respond.logit), re-scored with our tokenizer.

    Radioactivity test of Sander et al. 2024 (arXiv:2402.14904): re-tokenise every text, keep each
    distinct (previous h tokens, token) window of the corpus once, count the green ones under each key.
    Needs the tokenizer of the model that generated (`--tokenizer PATH`, a Hugging Face tokenizer).
    """

    name = "token"
    purpose = "logit_watermark"
    method = ("Token-level watermark (KGW green lists, Kirchenbauer et al. 2023, arXiv:2301.10226) re-scored "
              "with our tokenizer as in the radioactivity test of Sander et al. 2024: every distinct (previous "
              "tokens, token) window of the corpus once; X ~ Binomial(n, gamma) under H0.")

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer

    def score(self, texts: Sequence[str], keys: Sequence[bytes]) -> list[ChannelScore]:
        import numpy as np

        from cuirass.respond.logit.detect import windows
        from cuirass.respond.logit.keyed import GAMMA, context_seed, green

        seen: dict[tuple[tuple[int, ...], int], None] = {}
        for t in texts:
            for w in windows(self.tokenizer.encode(t, add_special_tokens=False)):
                seen.setdefault(w, None)
        pooled = list(seen)
        n, salt = len(pooled), corpus_digest(texts)
        out = []
        for key in keys:
            x = sum(bool(green(context_seed(key, c), np.array([tok]), GAMMA)[0]) for c, tok in pooled)
            p, p_gt = float(binom.sf(x - 1, n, GAMMA)), float(binom.sf(x, n, GAMMA))
            u = int.from_bytes(hashlib.blake2b(b"p|" + salt, digest_size=8, key=key[:64]).digest(), "big") / 2**64
            out.append(ChannelScore(n, x, n, GAMMA, p, p_gt + u * (p - p_gt)))
        return out


def _token_channel(options: dict[str, Any]) -> Channel | None:
    """The token channel, when the logit watermark is installed and a tokenizer path is given."""
    if importlib.util.find_spec("cuirass.respond.logit") is None or not options.get("tokenizer"):
        return None
    try:
        from transformers import AutoTokenizer
    except ModuleNotFoundError:
        return None
    return TokenChannel(AutoTokenizer.from_pretrained(options["tokenizer"]))


def _text_channel(options: dict[str, Any]) -> Channel:
    from cuirass.respond.defenses.watermark import finder_for

    return TextChannel(finder_for(tuple(options.get("exclude", ())), bool(options.get("invisible", False))))


# name -> factory(options) -> channel, or None when it is not available in this installation
CHANNELS: dict[str, Callable[[dict[str, Any]], Channel | None]] = {"text": _text_channel, "token": _token_channel}
