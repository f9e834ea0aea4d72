"""Train the built-in reference model (and its decoy) from scratch on the procedural problem corpus.

A small Llama-style decoder (RMSNorm, rotary positions, SwiGLU, tied embeddings) built from a
`transformers` config, trained with AdamW on an endless stream of fresh training-split problems, loss on the
assistant's turn only. The decoy is the same run's snapshot after a few steps: same family, same tokenizer,
same output format, clearly weaker. Both are saved as plain Hugging Face directories (config.json,
model.safetensors, tokenizer files with the chat template, generation_config.json).

Two threads by default (0.84 s against 1.50 s per step on a quiet 2-core machine); on a machine shared with
other busy processes one thread can be faster, since a second OpenMP thread then mostly waits (`--threads`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm
from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedModel, PreTrainedTokenizerBase

from cuirass.lab.reference import evaluate as ev
from cuirass.lab.reference.tokenizer import train_tokenizer
from cuirass.models.corpus import Worked, batches
from cuirass.models.everyday import everyday, off_topic
from cuirass.models.problems import framed, problem

OFF_TOPIC_SHARE = 0.06  # of training examples: non-math inputs (models.everyday.off_topic)
EVERYDAY_SHARE = 0.34  # everyday questions; the rest are the generator's problems
PACKAGE_MODELS = Path(__file__).resolve().parents[2] / "models"  # src/cuirass/models/{reference,decoy}


@dataclasses.dataclass(frozen=True, slots=True)
class TrainConfig:
    steps: int = 4000
    batch_size: int = 32
    lr: float = 2e-3
    warmup: int = 60
    weight_decay: float = 0.01
    seed: int = 0
    hidden: int = 128
    layers: int = 4
    heads: int = 4
    ffn: int = 512
    vocab_size: int = 1024
    tokenizer_problems: int = 3000
    decoy_step: int = 400  # snapshot saved as the decoy; 0 for none
    eval_n: int = 200
    threads: int = 2

    @classmethod
    def quick(cls, seed: int = 0) -> TrainConfig:
        """A few steps of a tiny model: checks the pipeline end to end in seconds, learns nothing useful."""
        return cls(
            steps=8,
            batch_size=8,
            warmup=2,
            seed=seed,
            hidden=32,
            layers=1,
            heads=2,
            ffn=64,
            vocab_size=400,
            tokenizer_problems=300,
            decoy_step=4,
            eval_n=4,
        )


def build_model(config: TrainConfig, tokenizer: PreTrainedTokenizerBase) -> LlamaForCausalLM:
    """A freshly initialised decoder sized by `config`, with the tokenizer's special ids."""
    model_config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=config.hidden,
        intermediate_size=config.ffn,
        num_hidden_layers=config.layers,
        num_attention_heads=config.heads,
        num_key_value_heads=config.heads,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        rms_norm_eps=1e-5,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(config.seed)
    return LlamaForCausalLM(model_config)


def _stream(seed: int) -> Iterator[Worked]:
    """Fresh training examples: generator problems (a share inside a casual or eliciting frame, problems.framed),
    everyday questions in their seen phrasings (models.everyday), and a few non-math inputs with their replies."""
    rng = random.Random(f"frames:{seed}")
    i = 0
    while True:
        x = rng.random()
        if x < OFF_TOPIC_SHARE:
            yield off_topic(seed * 1_000_003 + i)
        else:
            p = (
                everyday(seed * 1_000_003 + i)
                if x < OFF_TOPIC_SHARE + EVERYDAY_SHARE
                else problem(seed * 1_000_003 + i)
            )
            yield dataclasses.replace(p, question=framed(p.question, rng))
        i += 1


def _lr_at(step: int, config: TrainConfig) -> float:
    """Linear warm-up, then cosine decay to a tenth of the peak."""
    if step < config.warmup:
        return config.lr * (step + 1) / config.warmup
    progress = (step - config.warmup) / max(1, config.steps - config.warmup)
    return config.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def save(model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerBase, out: Path) -> int:
    """Write a loadable Hugging Face directory (safetensors); returns its size in bytes."""
    out.mkdir(parents=True, exist_ok=True)
    model.generation_config = GenerationConfig(
        do_sample=True,
        temperature=ev.DEFAULT_TEMPERATURE,
        top_p=ev.DEFAULT_TOP_P,
        top_k=0,
        max_new_tokens=ev.MAX_NEW_TOKENS,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return sum(f.stat().st_size for f in out.iterdir() if f.is_file())


def _evaluate(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, n: int, seed: int) -> dict[str, Any]:
    model.eval()
    greedy = ev.score(model, tokenizer, n, seed, temperature=0.0)
    sampled = ev.score(model, tokenizer, n, seed, temperature=ev.DEFAULT_TEMPERATURE)
    other = {name: ev.score(model, tokenizer, n, seed, questions=name) for name in ev.SETS[1:]}
    chat = ev.score_off_topic(model, tokenizer, min(n, 50), seed)
    model.train()
    return {
        "greedy": greedy.accuracy,
        f"t{ev.DEFAULT_TEMPERATURE}": sampled.accuracy,
        **{f"{name} t{ev.DEFAULT_TEMPERATURE}": result.accuracy for name, result in other.items()},
        "off-topic sensible": chat.accuracy,
        "n": n,
        "example": sampled.examples[0][1] if sampled.examples else "",
        "off-topic examples": [list(e[:2]) for e in chat.examples],
    }


def fit(
    model: LlamaForCausalLM,
    tokenizer: PreTrainedTokenizerBase,
    stream: Iterator[Worked],
    config: TrainConfig,
    progress: bool = True,
    desc: str = "train",
    on_step: Callable[[int, float], None] | None = None,
) -> float:
    """Train `model` for `config.steps` AdamW steps on worked examples from `stream`; returns the smoothed loss.

    The one training loop of the project: the reference model, its decoy and the lab's students all use it
    (a student's stream cycles over the examples an attacker harvested). `on_step(step, loss)` runs after
    every step (the reference run uses it to snapshot the decoy).
    """
    torch.set_num_threads(config.threads)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=config.lr,
        betas=(0.9, 0.98),
    )
    data = batches(tokenizer, stream, config.batch_size)
    model.train()
    bar = tqdm(range(config.steps), desc=desc, disable=not progress, unit="step")
    smooth = float("nan")
    for step in bar:
        ids, mask, labels = next(data)
        for group in opt.param_groups:
            group["lr"] = _lr_at(step, config)
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        smooth = loss.item() if step == 0 else 0.95 * smooth + 0.05 * loss.item()
        bar.set_postfix(loss=f"{smooth:.3f}")
        if on_step is not None:
            on_step(step, smooth)
    model.eval()
    return smooth


def train(config: TrainConfig, out: Path, progress: bool = True) -> dict[str, Any]:
    """Train, save OUT/reference and OUT/decoy, evaluate both on held-out problems; returns the summary."""
    torch.set_num_threads(config.threads)
    started = time.monotonic()
    corpus = _stream(config.seed + 7_919)
    texts = (ex.question + "\n" + ex.solution for ex in (next(corpus) for _ in range(config.tokenizer_problems)))
    tokenizer = train_tokenizer(texts, config.vocab_size)
    model = build_model(config, tokenizer)
    summary: dict[str, Any] = {
        "config": dataclasses.asdict(config),
        "params": sum(p.numel() for p in model.parameters()),
    }

    def snapshot_decoy(step: int, loss: float) -> None:
        if config.decoy_step and step + 1 == config.decoy_step:
            summary["decoy"] = {"step": step + 1, "loss": loss, "bytes": save(model, tokenizer, out / "decoy")}

    loss = fit(model, tokenizer, _stream(config.seed), config, progress, "train-reference", snapshot_decoy)
    summary["train_seconds"] = round(time.monotonic() - started, 1)
    summary["final_loss"] = loss
    summary["reference"] = {"step": config.steps, "bytes": save(model, tokenizer, out / "reference")}
    summary["reference"]["accuracy"] = _evaluate(model, tokenizer, config.eval_n, config.seed)
    if "decoy" in summary:
        decoy, decoy_tok = ev.load(out / "decoy")
        summary["decoy"]["accuracy"] = _evaluate(decoy, decoy_tok, config.eval_n, config.seed)
    summary["total_seconds"] = round(time.monotonic() - started, 1)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary
