"""From an OpenAI request body to what the engine runs: prompt token ids and sampling parameters.

Follows the OpenAI semantics: temperature 0 is greedy decoding; max_completion_tokens wins over
max_tokens; up to 4 stop strings, cut from the answer; a seed makes sampling reproducible (choice i
of n uses seed + i). Parameters the engine cannot honour (logprobs, echo, suffix, tools) are refused
with a 400 rather than silently ignored; presence/frequency penalties, logit_bias and user are
accepted and ignored, as several open servers do.
"""

from __future__ import annotations

import dataclasses
import secrets
from typing import Any

from cuirass.engine.loader import EngineError, LoadedModel

CHAT = "/v1/chat/completions"
MAX_STOPS = 4
DEFAULT_MAX_TOKENS = 4096  # when the request sets no limit and the model has no context length
_REFUSED = ("logprobs", "top_logprobs", "echo", "suffix", "tools", "functions", "best_of")


@dataclasses.dataclass(frozen=True, slots=True)
class SamplingParams:
    max_tokens: int  # new tokens at most, per choice
    temperature: float = 1.0  # 0: greedy
    top_p: float = 1.0  # a request's 0 becomes 1e-9: only the most likely token
    stop: tuple[str, ...] = ()
    seed: int = 0
    n: int = 1


@dataclasses.dataclass(frozen=True, slots=True)
class EngineRequest:
    chat: bool
    prompt_ids: tuple[int, ...]
    params: SamplingParams


def _message_text(content: Any) -> str:
    """A message's content as plain text (strings, or the text parts of a content list)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    raise EngineError("message content must be a string or a list of content parts", param="messages")


def prompt_ids(lm: LoadedModel, endpoint: str, body: dict[str, Any]) -> tuple[int, ...]:
    """Token ids of the prompt: the chat template applied to the messages, or the completion prompt."""
    tok = lm.tokenizer
    if endpoint == CHAT:
        msgs = body.get("messages")
        if not isinstance(msgs, list) or not msgs:
            raise EngineError("messages must be a non-empty list", param="messages")
        plain = [
            {"role": str(m.get("role", "user")), "content": _message_text(m.get("content"))}
            for m in msgs
            if isinstance(m, dict)
        ]
        text = tok.apply_chat_template(plain, add_generation_prompt=True, tokenize=False)
        return tuple(tok.encode(text, add_special_tokens=False))
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1:
        prompt = prompt[0]
    if isinstance(prompt, str):
        return tuple(tok.encode(prompt))
    if isinstance(prompt, list) and prompt and all(isinstance(t, int) for t in prompt):
        bad = [t for t in prompt if not 0 <= t < lm.vocab_size]
        if bad:
            raise EngineError(f"prompt token id {bad[0]} is outside the vocabulary", param="prompt")
        return tuple(prompt)
    raise EngineError(
        "the local engine serves one prompt per request (a string or one list of token ids)", param="prompt"
    )


def parse(lm: LoadedModel, endpoint: str, body: dict[str, Any]) -> EngineRequest:
    """Validate and translate one request; raise EngineError (a 400) naming the offending field."""
    for name in _REFUSED:
        if body.get(name):
            raise EngineError(f"the local engine does not support {name!r}", param=name)
    ids = prompt_ids(lm, endpoint, body)
    room = (lm.max_positions - len(ids)) if lm.max_positions else DEFAULT_MAX_TOKENS
    if room < 1:
        raise EngineError(
            f"the prompt is {len(ids)} tokens; this model's context is {lm.max_positions}",
            param="messages" if endpoint == CHAT else "prompt",
        )
    asked = body.get("max_completion_tokens") or body.get("max_tokens")
    if asked is not None and (not isinstance(asked, int) or asked < 1):
        raise EngineError("max_tokens must be an integer >= 1", param="max_tokens")
    temperature = body.get("temperature", lm.sampling_defaults.get("temperature", 1.0))
    top_p = body.get("top_p", lm.sampling_defaults.get("top_p", 1.0))
    if not isinstance(temperature, int | float) or not 0 <= temperature <= 2:
        raise EngineError("temperature must be a number between 0 and 2", param="temperature")
    if not isinstance(top_p, int | float) or not 0 <= top_p <= 1:
        raise EngineError("top_p must be a number between 0 and 1", param="top_p")
    stop = body.get("stop") or ()
    stop = (stop,) if isinstance(stop, str) else tuple(stop)
    if len(stop) > MAX_STOPS or not all(isinstance(s, str) and s for s in stop):
        raise EngineError(f"stop must be a string or up to {MAX_STOPS} non-empty strings", param="stop")
    seed = body.get("seed")
    if seed is None:
        seed = secrets.randbits(63)
    elif not isinstance(seed, int):
        raise EngineError("seed must be an integer", param="seed")
    n = body.get("n", 1) or 1
    if not isinstance(n, int) or not 1 <= n <= 16:
        raise EngineError("the local engine serves n between 1 and 16", param="n")
    params = SamplingParams(
        max_tokens=min(int(asked), room) if asked else room,
        temperature=float(temperature),
        top_p=max(float(top_p), 1e-9),
        stop=stop,
        seed=int(seed) % (1 << 63),
        n=n,
    )
    return EngineRequest(endpoint == CHAT, ids, params)
