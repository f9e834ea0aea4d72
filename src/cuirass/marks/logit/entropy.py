"""The entropy gate shared by the logit watermark's generation and detection sides.

    H_t = -sum_v softmax(z_t)_v log softmax(z_t)_v      z_t: the model's raw logits at step t (nats)
    a step is marked, and later scored, iff H_t >= min_entropy and the token holds no digit

SWEET (Lee et al., 2023, arXiv:2305.15060) selects the watermarked and the scored tokens this way:
low-entropy steps carry no evidence (the model would have written the same token anyway) but would
dilute the binomial count. The detector needs our model to recompute H_t on a suspect text; the
selection depends on the text and the model only, never on a key, so the scored windows keep the exact
Binomial(n, gamma) null. Recomputing H_t without the original prompt gives slightly different
entropies: that can only cost power, not validity.

Tokens that contain a digit are never biased and never scored (`protect_numbers`, on by default): where
the model hesitates between two digits, a bias would pick a wrong number, the one edit a watermark must
never make; the words around the numbers carry the mark instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def entropy(scores: Any) -> Any:
    """H of softmax(scores) along the last axis, in nats (a torch tensor)."""
    import torch

    return entropy_of(torch.softmax(scores.float(), dim=-1))


def entropy_of(probs: Any) -> Any:
    """H of a probability vector along the last axis (softmax(scores.float()) already computed), in nats."""
    import torch

    return torch.special.entr(probs).sum(-1)  # entr(0) = 0: -inf logits are fine


_NUMBER_TOKENS: dict[int, frozenset[int]] = {}


def number_tokens(tokenizer: Any) -> frozenset[int]:
    """Ids of the tokens whose text holds a digit (cached per tokenizer object)."""
    key = id(tokenizer)
    if key not in _NUMBER_TOKENS:
        vocab = tokenizer.get_vocab()
        _NUMBER_TOKENS[key] = frozenset(
            i for t, i in vocab.items() if any(c.isdigit() for c in tokenizer.convert_tokens_to_string([t]))
        )
    return _NUMBER_TOKENS[key]


class EntropyGate:
    """Which steps of a text our model was unsure about: `keep(prompt_ids, token_ids)` per token."""

    def __init__(self, model: Any, min_entropy: float, protected: frozenset[int] = frozenset()) -> None:
        self.model, self.min_entropy, self.protected = model, min_entropy, protected

    @classmethod
    def from_pretrained(cls, path: str, min_entropy: float, protect_numbers: bool = True) -> EntropyGate:
        """Load the model (a Hugging Face directory, or builtin:NAME) on the CPU, in eval mode."""
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from cuirass.engine.loader import resolve_path

        where = str(resolve_path(path))
        model = AutoModelForCausalLM.from_pretrained(where, local_files_only=True, dtype=torch.float32)
        protected = (
            number_tokens(AutoTokenizer.from_pretrained(where, local_files_only=True))
            if protect_numbers
            else frozenset()
        )
        return cls(model.eval(), min_entropy, protected)

    def keep(self, prompt_ids: Sequence[int], token_ids: Sequence[int]) -> list[bool]:
        """For each of `token_ids` (generated after `prompt_ids`), whether its step passes the gate."""
        import torch

        if not token_ids:
            return []
        if self.min_entropy <= 0:
            return [t not in self.protected for t in token_ids]
        ids = torch.tensor([list(prompt_ids) + list(token_ids)])
        with torch.inference_mode():
            logits = self.model(input_ids=ids).logits[0]
        start = len(prompt_ids)
        # logits at position i predict token i + 1; the first token has no prediction without a prompt
        h = entropy(logits[max(start - 1, 0) : len(prompt_ids) + len(token_ids) - 1]).tolist()
        sure = ([False] if start == 0 else []) + [x >= self.min_entropy for x in h]
        return [k and t not in self.protected for k, t in zip(sure, token_ids, strict=True)]
