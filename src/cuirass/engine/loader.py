"""Load a Hugging Face causal LM and its tokenizer from a local directory (never from a hub).

Any architecture `AutoModelForCausalLM` knows works: the built-in reference model, a tiny randomly
initialised GPT-2 in the tests, or a downloaded Llama/Qwen checkpoint. A tokenizer without a chat
template gets FALLBACK_CHAT_TEMPLATE, so chat requests work with base models too.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import threading
from pathlib import Path
from typing import Any

# role: content lines, then the assistant's turn. Plain text that any tokenizer can encode.
FALLBACK_CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}"
)

BUILTIN_PREFIX = "builtin:"
_DTYPE_ARG = "dtype"


class EngineError(Exception):
    """The request or the model cannot be served; `status` 400 for bad parameters, else 500."""

    def __init__(self, message: str, status: int = 400, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.param = param


@dataclasses.dataclass(slots=True)
class LoadedModel:
    model: Any  # a transformers PreTrainedModel in eval mode
    tokenizer: Any  # a transformers tokenizer with a chat template
    device: Any  # torch.device
    name: str
    eos_ids: frozenset[int]  # generation ends (finish_reason "stop") on any of these
    max_positions: int | None  # longest sequence the model accepts, when the config says
    vocab_size: int  # width of the logits (may exceed the tokenizer's size)
    cache_arg: str = "past_key_values"  # forward()'s KV-cache argument ("cache" from transformers 5.x)
    keeps_last: bool = False  # forward() takes logits_to_keep (compute logits for the last position only)
    sampling_defaults: dict[str, float] = dataclasses.field(default_factory=dict)  # from generation_config.json


def returned_cache(out: Any, cache_arg: str) -> Any:
    """The KV cache a forward pass returns, under the name that matches its `cache_arg`."""
    return out.cache if cache_arg == "cache" else out.past_key_values


def resolve_path(path: str) -> Path:
    """`builtin:NAME` is a model shipped in the package (cuirass/models/NAME); anything else a directory."""
    if path.startswith(BUILTIN_PREFIX):
        return Path(__file__).resolve().parents[1] / "models" / path[len(BUILTIN_PREFIX) :]
    return Path(path).expanduser()


def pick_device(device: str) -> Any:
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise EngineError(f"device {device!r} asked for, but CUDA is not available here", status=500)
    return dev


_LOAD_LOCK = threading.Lock()


def load_model(path: str, device: str = "auto", dtype: str = "auto", threads: int | None = None) -> LoadedModel:
    """Read config, weights and tokenizer from `path`; raise EngineError saying what is missing."""
    where = resolve_path(path)
    if not (where / "config.json").is_file():
        raise EngineError(f"no Hugging Face model at {where} (config.json missing)", status=500)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local directory only: never reach for a hub
    # OpenMP threads that spin while idle starve the event loop and every other process on a small
    # machine: measured 50x slower forward passes on 2 busy cores (3 ms vs 200 ms per token, tiny
    # GPT-2). Read when torch first loads, so it only helps if torch is not imported yet.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    global _DTYPE_ARG  # noqa: PLW0603 - decided once per process
    major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
    _DTYPE_ARG = "dtype" if (major, minor) >= (4, 56) else "torch_dtype"  # renamed in transformers 4.56

    hf_logging.disable_progress_bar()
    if threads is not None:
        torch.set_num_threads(threads)
    dev = pick_device(device)
    if dtype == "auto":
        torch_dtype = torch.float32 if dev.type == "cpu" else "auto"
    else:
        torch_dtype = getattr(torch, dtype)
    # transformers builds the model on the "meta" device through process-wide state, so two models
    # loading at once in two threads (a principal and its decoy) can corrupt each other: one at a time.
    with _LOAD_LOCK:
        try:
            tokenizer = AutoTokenizer.from_pretrained(where, local_files_only=True)
            model = AutoModelForCausalLM.from_pretrained(where, local_files_only=True, **{_DTYPE_ARG: torch_dtype})
        except (OSError, ValueError, KeyError) as exc:
            raise EngineError(f"cannot load the model at {where}: {exc}", status=500) from None
        model.to(dev).eval()
    if not getattr(tokenizer, "chat_template", None):
        tokenizer.chat_template = FALLBACK_CHAT_TEMPLATE
    eos: set[int] = set()
    for source in (
        model.generation_config.eos_token_id if model.generation_config else None,
        model.config.eos_token_id,
        tokenizer.eos_token_id,
    ):
        if isinstance(source, int):
            eos.add(source)
        elif isinstance(source, list | tuple):
            eos.update(int(t) for t in source)
    cfg = model.config
    max_pos = getattr(cfg, "max_position_embeddings", None) or getattr(cfg, "n_positions", None)
    vocab = int(model.get_output_embeddings().weight.shape[0])
    args = inspect.signature(model.forward).parameters
    return LoadedModel(
        model,
        tokenizer,
        dev,
        where.name,
        frozenset(eos),
        max_pos,
        vocab,
        cache_arg="cache" if "cache" in args else "past_key_values",
        keeps_last="logits_to_keep" in args,
        sampling_defaults=_sampling_defaults(model.generation_config),
    )


def _sampling_defaults(gen: Any) -> dict[str, float]:
    """The temperature and top_p a model's authors recommend (generation_config.json, when it samples):
    used when a request leaves them out, as vLLM does, instead of the OpenAI defaults of 1 and 1."""
    if gen is None or not getattr(gen, "do_sample", False):
        return {}
    return {k: float(v) for k in ("temperature", "top_p") if isinstance(v := getattr(gen, k, None), int | float)}
