"""Watermark channels an audit scores a corpus with: one small class each, registered by name.

A channel turns (corpus, keys) into one pooled count per key, (n scored units, n green), with an exact
null for text written without that key: X ~ Binomial(n, gamma) for the token channel, and for the text
channel X ~ Poisson-binomial(1/k_1, ..., 1/k_n) (a window with k variants is green with probability
1/k; its `gamma` is the mean 1/k, for display). Each window (the context
that seeds the keyed hash) is scored once over the whole corpus, because a repeated window repeats its
green/red outcome and would break independence (Fernandez et al. 2023, arXiv:2308.00113, "Three Bricks
to Consolidate Watermarks for LLMs", sec. 4; Sander et al. 2024, arXiv:2402.14904, for the same test on
a suspect model's outputs). Then p = P(X >= x) under that null, exact.

`exclude` (texts, e.g. the probe prompts of an endpoint audit): windows that occur in them are not scored.
A suspect that echoes or continues its prompt reproduces the prompt's windows, and a prompt that itself
came from our watermarked answers would then score green without the suspect having learnt anything
(Sander et al. 2024, sec. 4, filter the prompt's (context, token) tuples for this reason). The excluded set
depends on the prompts only, never on a key, so the remaining windows keep the exact Binomial null.

Channels:
- `text`  the gateway's lexical watermark (cuirass.marks.text), keys of purpose "watermark".
- `token` the local engine's token-level watermark (cuirass.marks.logit), keys of purpose
          "logit_watermark", when a tokenizer is given.
- `signature` the answer signature (cuirass.marks.signature), keys of purpose "signature", when the
          prompts of the texts are known. Its null is exact too, but it is not a Binomial: see its method.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import importlib.util
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from cuirass.marks.text import merge, score_many, units
from cuirass.marks.text.choices import Finder, finder_for


@dataclasses.dataclass(frozen=True, slots=True)
class ChannelScore:
    n_scored: int
    n_green: int
    n_windows: int
    gamma: float
    p_value: float  # exact: P(X >= n_green) under the channel's null
    p_randomized: float  # exactly Uniform(0, 1) under H0 (for the control's uniformity check)
    z: float | None = None  # the standardised score, where the null is not the Binomial(n, gamma) of the count


class Channel(Protocol):
    name: str
    purpose: str  # the keyring purpose of this channel's keys
    method: str  # one paragraph for the report

    def score(
        self,
        texts: Sequence[str],
        keys: Sequence[bytes],
        exclude: Sequence[str] = (),
        prompts: Sequence[str] | None = None,
    ) -> list[ChannelScore]:
        """One pooled score per key, in key order; windows that occur in `exclude` are not scored.
        `prompts`, when known, are the prompts the texts answer (one each, in order)."""
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
    method = (
        "Lexical watermark (text level). Every choice point of every text (contraction, synonym, "
        "connective, optional word, spelling, hyphenation, serial comma) is a window (choice class | "
        "the two previous words that are not choice points); each distinct window of the corpus is "
        "scored once (first occurrence), green when its variant is the one of its k variants that "
        "BLAKE2b(key, window) selects. Under H0 (text not written with the key) the keyed selections "
        "are independent and uniform against a choice fixed before the key, so a window is green with "
        "probability 1/k and X ~ Poisson-binomial(1/k_1, ..., 1/k_n) exactly, whatever the natural "
        "frequency of each variant; its tail is computed exactly (convolution of one binomial per k)."
    )

    def __init__(self, finder: Finder | None = None) -> None:
        self.finder = finder

    def score(
        self,
        texts: Sequence[str],
        keys: Sequence[bytes],
        exclude: Sequence[str] = (),
        prompts: Sequence[str] | None = None,
    ) -> list[ChannelScore]:
        banned = {u[0] for t in exclude for u in units(t, self.finder, stop=frozenset())}
        pooled = tuple(u for u in merge(units(t, self.finder, stop=frozenset()) for t in texts) if u[0] not in banned)
        results = score_many(pooled, keys, salt=corpus_digest(texts))
        return [ChannelScore(r.n_scored, r.n_green, r.n_windows, r.gamma, r.p_value, r.p_randomized) for r in results]


class TokenChannel:
    """The local engine's token-level watermark (cuirass.marks.logit), re-scored with our tokenizer.

    Radioactivity test of Sander et al. 2024 (arXiv:2402.14904): re-tokenise every text, keep one window
    per distinct context of the corpus (its most frequent next token, `marks.logit.detect.corpus_windows`), count
    the green ones under each key. With an entropy gate (the policy's `min_entropy`, our model loaded), only
    the steps our model is unsure about are scored, as at generation (SWEET, Lee et al. 2023): the gate and
    the prompt exclusion look at the texts and our model only, never at a key, so the null stays exact.
    Needs the tokenizer of the model that generated (`--tokenizer PATH`, a Hugging Face tokenizer).
    """

    name = "token"
    purpose = "logit_watermark"
    method = (
        "Token-level watermark (KGW green lists, Kirchenbauer et al. 2023, arXiv:2301.10226) re-scored "
        "with our tokenizer as in the radioactivity test of Sander et al. 2024: one window per distinct "
        "context of the corpus (its most frequent next token), windows that occur in the probe prompts "
        "left out, and, when the policy gates the watermark by entropy, only the steps where our model's "
        "entropy passes the same threshold (SWEET); X counts the green lists (m per context) the "
        "windows' tokens are in, X ~ Binomial(m n, gamma) under H0."
    )

    def __init__(
        self,
        tokenizer: Any,
        gamma: float | None = None,
        context: int | None = None,
        gate: Any = None,
        lists: int | None = None,
    ) -> None:
        from cuirass.marks.logit.keyed import CONTEXT, GAMMA, LISTS, check_lists

        self.tokenizer = tokenizer
        self.gamma = GAMMA if gamma is None else float(gamma)  # must match the policy's logit_watermark options
        self.context = CONTEXT if context is None else int(context)
        self.lists = check_lists(LISTS if lists is None else int(lists))
        self.gate = gate  # cuirass.marks.logit.entropy.EntropyGate, or None: every step is scored
        self._kept: dict[str, tuple[list[int], list[bool]]] = {}

    def _ids_kept(self, text: str) -> tuple[list[int], list[bool]]:
        if text not in self._kept:
            ids = list(self.tokenizer.encode(text, add_special_tokens=False))
            keep = self.gate.keep((), ids) if self.gate is not None else [True] * len(ids)
            self._kept[text] = (ids, keep)
        return self._kept[text]

    def windows(self, texts: Sequence[str], exclude: Sequence[str] = ()) -> list[tuple[tuple[int, ...], int]]:
        """The scored windows of `texts`: steps the gate keeps whose (context, token) is in no `exclude` text."""
        from cuirass.marks.logit.detect import corpus_windows

        h = self.context
        banned: set[tuple[tuple[int, ...], int]] = set()
        for t in exclude:
            ids = list(self.tokenizer.encode(t, add_special_tokens=False))
            banned.update((tuple(ids[i - h : i]), ids[i]) for i in range(h, len(ids)))
        lists, keeps = [], []
        for t in texts:
            ids, gate = self._ids_kept(t)
            lists.append(ids)
            keeps.append([g and (i < h or (tuple(ids[i - h : i]), ids[i]) not in banned) for i, g in enumerate(gate)])
        return corpus_windows(lists, h, keeps)

    def score(
        self,
        texts: Sequence[str],
        keys: Sequence[bytes],
        exclude: Sequence[str] = (),
        prompts: Sequence[str] | None = None,
    ) -> list[ChannelScore]:
        from cuirass.marks.logit.detect import score_windows

        pooled, salt = self.windows(texts, exclude), corpus_digest(texts)
        return [
            ChannelScore(r.n_trials, r.n_green, r.n_scored, r.gamma, r.p_value, r.p_randomized)
            for r in (score_windows(pooled, key, self.gamma, self.lists, salt) for key in keys)
        ]


class SignatureChannel:
    """The answer signature (cuirass.marks.signature): needs each text's prompt, so only an audit that asked
    the questions itself (`audit endpoint`, or a corpus of prompt and answer pairs) can run it."""

    name = "signature"
    purpose = "signature"
    method = (
        "Answer signature (for flagged traffic, built to be learned by a student). The lead-in of the "
        "final-answer sentence ('Hence the answer is ...') is one of K = 8 variants, chosen by "
        "BLAKE2b(key, w) mod K where w is the prompt's last word. c_w[v] counts the suspect's answers to "
        "prompts of window w that open their final-answer sentence with variant v; T = sum over w of "
        "c_w[keyed variant of w]. Under H0 (the suspect never learned from text signed with the key) each "
        "window's keyed variant is uniform and independent of the suspect, so T is a sum of independent "
        "uniform picks from each window's count vector: its distribution is their exact convolution, and "
        "answers sharing a window share one draw (no independence between answers is assumed)."
    )

    def score(
        self,
        texts: Sequence[str],
        keys: Sequence[bytes],
        exclude: Sequence[str] = (),
        prompts: Sequence[str] | None = None,
    ) -> list[ChannelScore]:
        from cuirass.marks import signature

        by_window = signature.counts(zip(prompts, texts, strict=True)) if prompts is not None else {}
        u = int.from_bytes(corpus_digest(texts)[:8], "big") / 2**64
        dist = signature.null_distribution(by_window.values())  # the same null for every key
        out = []
        for key in keys:
            s = signature.score(by_window, key, u, dist)
            out.append(ChannelScore(s.n_answers, s.hits, s.n_windows, 1 / signature.K, s.p_value, s.p_randomized))
        return out


def _token_channel(options: dict[str, Any]) -> Channel | None:
    """The token channel, when the logit watermark is installed and a tokenizer path is given.

    Given a path (our model's directory or builtin:NAME) and a policy `min_entropy` > 0, the channel loads
    our model for the entropy gate, so it scores the same steps generation marked."""
    if importlib.util.find_spec("cuirass.marks.logit") is None or not options.get("tokenizer"):
        return None
    try:
        from transformers import AutoTokenizer
    except ModuleNotFoundError:
        return None
    tok, gate = options["tokenizer"], None
    if isinstance(tok, str):  # a directory, or builtin:NAME for a model shipped with cuirass
        from cuirass.engine.loader import resolve_path
        from cuirass.marks.logit.keyed import MIN_ENTROPY

        min_entropy = float(options.get("min_entropy", MIN_ENTROPY))
        if min_entropy > 0 or options.get("protect_numbers", True):
            from cuirass.marks.logit.entropy import EntropyGate

            gate = EntropyGate.from_pretrained(tok, min_entropy, bool(options.get("protect_numbers", True)))
        tok = AutoTokenizer.from_pretrained(str(resolve_path(tok)), local_files_only=True)
    return TokenChannel(tok, options.get("gamma"), options.get("context"), gate, options.get("lists"))


def _text_channel(options: dict[str, Any]) -> Channel:
    return TextChannel(finder_for(tuple(options.get("exclude", ())), bool(options.get("invisible", False))))


def options_of(name: str, policy_options: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A copy of the policy options of the defense that marks what channel `name` scores (text: watermark,
    token: logit_watermark, signature: signature), so detection reads the settings marking used."""
    return dict(policy_options.get({"text": "watermark", "token": "logit_watermark"}.get(name, name), {}))


# name -> factory(options) -> channel, or None when it is not available in this installation
CHANNELS: dict[str, Callable[[dict[str, Any]], Channel | None]] = {
    "text": _text_channel,
    "token": _token_channel,
    "signature": lambda options: SignatureChannel(),
}
