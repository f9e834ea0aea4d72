"""The sampler, and what runs before it at every step of every choice (cuirass.engine.batch):

    scores  = logits of the last position (float32)
    scores  = p_k(input_ids, scores) for each processor k, in order       (defenses act here, on raw logits)
    greedy  : argmax(scores)                                              if temperature == 0
    else    : softmax(scores / T), keep the smallest top set with mass >= top_p (Holtzman et al. 2020,
              "The Curious Case of Neural Text Degeneration"), renormalise, draw with a seeded generator

Processors see the raw logits before temperature, as transformers' LogitsProcessor does before its
warpers, so a green-list bias of delta is a bias of delta/T after scaling.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

Processor = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def pick(scores: torch.Tensor, temperature: float, top_p: float, gen: torch.Generator | None) -> int:
    """The next token id from scores [1, V]."""
    if temperature == 0:
        return int(scores.argmax(dim=-1))
    probs = torch.softmax(scores / temperature, dim=-1)
    if top_p < 1.0:
        sorted_p, order = probs.sort(dim=-1, descending=True)
        before = sorted_p.cumsum(dim=-1) - sorted_p  # mass of the tokens ranked above each token
        sorted_p[before >= top_p] = 0.0  # the top token always stays (its `before` is 0)
        probs = torch.zeros_like(probs).scatter_(-1, order, sorted_p)
    return int(torch.multinomial(probs, 1, generator=gen))
