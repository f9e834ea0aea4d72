"""The token loop: one forward pass per new token (KV cache), logits processors, then the sampler.

    scores  = logits of the last position (float32)
    scores  = p_k(input_ids, scores) for each processor k, in order       (defenses act here, on raw logits)
    greedy  : argmax(scores)                                              if temperature == 0
    else    : softmax(scores / T), keep the smallest top set with mass >= top_p (Holtzman et al. 2020,
              "The Curious Case of Neural Text Degeneration"), renormalise, draw with a seeded generator

Processors see the raw logits before temperature, as transformers' LogitsProcessor does before its
warpers, so a green-list bias of delta is a bias of delta/T after scaling.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch

from cuirass.engine.loader import LoadedModel
from cuirass.engine.params import SamplingParams

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


@torch.inference_mode()
def tokens(lm: LoadedModel, prompt_ids: Sequence[int], params: SamplingParams, seed: int,
           processors: Sequence[Processor] = ()) -> Iterator[int]:
    """Yield up to params.max_tokens new token ids; the caller stops early (eos, stop string, cancel)."""
    dev = lm.device
    n_prompt = len(prompt_ids)
    seq = torch.empty((1, n_prompt + params.max_tokens), dtype=torch.long, device=dev)
    seq[0, :n_prompt] = torch.tensor(prompt_ids, dtype=torch.long, device=dev)
    gen = torch.Generator(device=dev).manual_seed(seed) if params.temperature > 0 else None
    past: Any = None
    step = seq[:, :n_prompt]
    extra = {"logits_to_keep": 1} if lm.keeps_last else {}
    for i in range(params.max_tokens):
        out = lm.model(input_ids=step, use_cache=True, **{lm.cache_arg: past}, **extra)
        past = out.cache if lm.cache_arg == "cache" else out.past_key_values
        scores = out.logits[:, -1, :].float()
        for proc in processors:
            scores = proc(seq[:, : n_prompt + i], scores)
        tok = pick(scores, params.temperature, params.top_p, gen)
        yield tok
        seq[0, n_prompt + i] = tok
        step = seq[:, n_prompt + i : n_prompt + i + 1]
