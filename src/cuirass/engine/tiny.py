"""Write a tiny, randomly initialised GPT-2-style model with its own tokenizer to a directory.

For tests and benchmarks: it proves the engine is generic (it is loaded through exactly the code that
loads any other model) and it needs no download. Deterministic for a given seed.
"""

from __future__ import annotations

import random
from pathlib import Path

_WORDS = (
    "the a one two three four five six seven eight nine ten plus minus times equals so then we add take "
    "half of total each apples books coins has have gives left more less answer is step first next finally "
    "because therefore number sum difference product she he they buys sells shares"
).split()


def corpus(n_lines: int = 400, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [
        " ".join(rng.choice(_WORDS) for _ in range(rng.randint(5, 15))) + f" {rng.randint(0, 999)}."
        for _ in range(n_lines)
    ]


def write_tiny_model(
    path: str | Path,
    vocab_size: int = 400,
    n_layer: int = 2,
    n_embd: int = 64,
    n_positions: int = 512,
    seed: int = 0,
    chat_template: str | None = None,
) -> Path:
    """A byte-level BPE tokenizer trained on a small procedural corpus, and a random GPT-2 over it."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    eos = "<|endoftext|>"
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[eos],
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    bpe.train_from_iterator(corpus(seed=seed), trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token=eos, bos_token=eos)
    if chat_template is not None:
        tok.chat_template = chat_template
    tok.save_pretrained(out)
    eos_id = tok.convert_tokens_to_ids(eos)
    assert isinstance(eos_id, int)  # one token in, one id out
    cfg = GPT2Config(
        vocab_size=len(tok),
        n_positions=n_positions,
        n_embd=n_embd,
        n_layer=n_layer,
        n_head=2,
        bos_token_id=eos_id,
        eos_token_id=eos_id,
    )
    torch.manual_seed(seed)
    GPT2LMHeadModel(cfg).save_pretrained(out)
    return out
