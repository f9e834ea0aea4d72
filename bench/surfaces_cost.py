"""What the Messages and Responses surfaces cost per request: their translation, in-process.

    .venv/bin/python bench/surfaces_cost.py [--tokens 300] [--repeat 2000]

The gateway path after translation is the one chat completions takes (the same validation, policy,
upstream call and event), so a surface's extra cost is its translation: the request to a chat body, the
finished chat completion to its answer (non-streaming), and each chat chunk to its stream events
(streaming). Measured with `timeit` on realistic bodies (a system prompt, a three-turn conversation, two
tools) and an answer of `--tokens` tokens with reasoning, beside the chat surface's own relay framing of
the same chunks. Results go to BENCHMARKS.md, section "API surfaces (issue 22)", by hand.
"""

from __future__ import annotations

import argparse
import timeit
from typing import Any

from cuirass.gateway.surfaces import anthropic, responses
from cuirass.gateway.surfaces.openai import CHAT_SURFACE

TURNS = [
    "Tom has 17 apples and buys 25 more. How many does he have?",
    "He has 42 apples.",
    "And if he gives 9 to his sister?",
]
TOOLS_SCHEMA = {"type": "object", "properties": {"q": {"type": "string"}}}


def _bodies() -> dict[str, dict[str, Any]]:
    msgs = [{"role": ("user", "assistant")[i % 2], "content": t} for i, t in enumerate(TURNS)]
    return {
        "chat": {
            "model": "m",
            "max_tokens": 300,
            "messages": [{"role": "system", "content": "Be brief."}, *msgs],
            "tools": [{"type": "function", "function": {"name": f"t{i}", "parameters": TOOLS_SCHEMA}} for i in (1, 2)],
        },
        "messages": {
            "model": "m",
            "max_tokens": 300,
            "system": "Be brief.",
            "messages": msgs,
            "tools": [{"name": f"t{i}", "input_schema": TOOLS_SCHEMA} for i in (1, 2)],
            "thinking": {"type": "enabled", "budget_tokens": 1024},
        },
        "responses": {
            "model": "m",
            "max_output_tokens": 300,
            "instructions": "Be brief.",
            "input": msgs,
            "tools": [{"type": "function", "name": f"t{i}", "parameters": TOOLS_SCHEMA} for i in (1, 2)],
        },
    }


def _completion(tokens: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    words = [f" w{i}" for i in range(tokens)]
    whole = {
        "id": "chatcmpl-1",
        "model": "m",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "".join(words), "reasoning_content": "".join(words[:50])},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 40, "completion_tokens": tokens, "total_tokens": tokens + 40},
    }
    chunks = [{"id": "c", "choices": [{"index": 0, "delta": {"reasoning_content": w}}]} for w in words[:50]]
    chunks += [{"id": "c", "choices": [{"index": 0, "delta": {"content": w}}]} for w in words]
    chunks += [{"id": "c", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}]
    chunks += [{"id": "c", "choices": [], "usage": whole["usage"]}]
    return whole, chunks


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tokens", type=int, default=300)
    ap.add_argument("--repeat", type=int, default=2000)
    args = ap.parse_args()
    bodies = _bodies()
    whole, chunks = _completion(args.tokens)
    surfaces: dict[str, Any] = {"chat": CHAT_SURFACE, "messages": anthropic.SURFACE, "responses": responses.SURFACE}

    def stream(surface: Any, body: dict[str, Any]) -> None:
        framing = surface.framing(body, "r")
        for ch in chunks:
            framing.chunk(dict(ch))
        framing.end()

    print(f"| surface | request -> chat (us) | answer, {args.tokens} tokens (us) | stream, {len(chunks)} chunks (us) |")
    print("|---|---:|---:|---:|")
    for name, surface in surfaces.items():
        body = bodies[name]
        n = args.repeat
        t_req = min(timeit.repeat(lambda: surface.to_chat(body), number=n, repeat=3)) / n * 1e6  # noqa: B023
        t_ans = min(timeit.repeat(lambda: surface.answer(whole, body, "r"), number=n, repeat=3)) / n * 1e6  # noqa: B023
        m = max(1, n // 20)
        t_str = min(timeit.repeat(lambda: stream(surface, body), number=m, repeat=3)) / m * 1e6  # noqa: B023
        print(f"| {name} | {t_req:.1f} | {t_ans:.1f} | {t_str:.0f} |")


if __name__ == "__main__":
    main()
