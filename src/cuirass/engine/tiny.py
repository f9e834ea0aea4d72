"""Write a tiny, randomly initialised GPT-2-style model with its own tokenizer to a directory.

For tests and benchmarks: it proves the engine is generic (it is loaded through exactly the code that
loads any other model) and it needs no download. Deterministic for a given seed.
"""

from __future__ import annotations

import itertools
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


SCRIPT = "<think> two plus three makes five </think> answer: 5"


def write_scripted_model(path: str | Path, script: str = SCRIPT) -> Path:
    """A one-layer Llama that writes `script` (space-separated words) after any prompt, then ends.

    For tests that need known output through the real loading and sampling code (the reasoning parser): its
    attention and MLP write nothing, so the last hidden state is the current token's embedding (one-hot), and
    the untied output matrix maps each word of the script to the next with a logit margin of 40, a bigram
    chain no sampling temperature up to 2 leaves (every other token is below e^-20 of it).
    """
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    words = script.split()
    vocab = ["<|end|>", "<|unk|>", "<|user|>", "<|assistant|>", *dict.fromkeys(words)]
    ids = {w: i for i, w in enumerate(vocab)}
    core = Tokenizer(models.WordLevel(ids, unk_token="<|unk|>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=core, eos_token="<|end|>", unk_token="<|unk|>", pad_token="<|end|>")
    tok.chat_template = "{% for m in messages %}<|user|> {{ m['content'] }} {% endfor %}<|assistant|>"
    tok.save_pretrained(out)
    n = len(vocab) + len(vocab) % 2  # an even width for the rotary embedding
    cfg = LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=n,
        intermediate_size=8,
        num_hidden_layers=1,
        num_attention_heads=1,
        num_key_value_heads=1,
        max_position_embeddings=256,
        tie_word_embeddings=False,
        bos_token_id=None,
        eos_token_id=ids["<|end|>"],
        pad_token_id=ids["<|end|>"],
    )
    model = LlamaForCausalLM(cfg)
    chain = ["<|assistant|>", *words, "<|end|>"]
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.model.embed_tokens.weight.copy_(torch.eye(len(vocab), n))
        model.model.norm.weight.fill_(1.0)
        model.model.layers[0].input_layernorm.weight.fill_(1.0)
        model.model.layers[0].post_attention_layernorm.weight.fill_(1.0)
        margin = 40.0 / n**0.5  # the final RMSNorm turns a one-hot into sqrt(n) times it
        for a, b in itertools.pairwise(chain):
            model.lm_head.weight[ids[b], ids[a]] = margin
        for w in vocab:
            if w not in chain[:-1]:  # anything else (a prompt word) leads into the script
                model.lm_head.weight[ids[words[0]], ids[w]] = margin
    model.save_pretrained(out)
    return out
