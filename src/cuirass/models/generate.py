"""Batched sampling from a causal LM through its chat template, without a server (left-padded batches).

The one place a model in-process answers questions: the reference model's evaluation, the distillation lab's
students, and `audit weights`, which questions a suspect whose weights we hold, use it alike.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from transformers import GenerationMixin, LogitsProcessorList, PreTrainedModel, PreTrainedTokenizerBase

from cuirass.models.corpus import messages

DEFAULT_TEMPERATURE = 0.7  # the reference model's default sampling temperature (also in generation_config.json)
DEFAULT_TOP_P = (
    0.9  # and its default nucleus (top_p), as Llama 3 ships; the local engine uses both when a request omits them
)
MAX_NEW_TOKENS = 200  # the longest worked solution is about 150 tokens


@torch.inference_mode()
def generate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    questions: list[str],
    temperature: float = DEFAULT_TEMPERATURE,
    seed: int = 0,
    max_new_tokens: int = MAX_NEW_TOKENS,
    batch_size: int = 64,
    processors: Callable[[], list[Any]] | None = None,
    top_p: float | None = None,
) -> list[str]:
    """The assistant's reply to each question (chat template, left-padded batches); temperature 0 is greedy.

    `processors()` gives fresh logits processors per batch (the engine's defenses work on batches too)."""
    if not isinstance(model, GenerationMixin):  # PreTrainedModel itself has no `generate`; causal LMs do
        raise TypeError(f"{type(model).__name__} cannot generate text: it is not a causal language model")
    torch.manual_seed(seed)
    replies: list[str] = []
    for start in range(0, len(questions), batch_size):
        texts = [
            tokenizer.apply_chat_template(messages(q), add_generation_prompt=True, tokenize=False)
            for q in questions[start : start + batch_size]
        ]
        enc = tokenizer(texts, add_special_tokens=False, padding=True, return_tensors="pt")
        nucleus = DEFAULT_TOP_P if top_p is None else top_p
        sampling: dict[str, Any] = (
            {"do_sample": True, "temperature": temperature, "top_p": nucleus, "top_k": 0}
            if temperature > 0
            else {"do_sample": False}
        )
        if processors is not None:
            sampling["logits_processor"] = LogitsProcessorList(processors())
        out = model.generate(
            **enc,
            max_new_tokens=max_new_tokens,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            **sampling,
        )
        replies += tokenizer.batch_decode(out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
    return replies
