"""Batched decoding: choices decoded together give what each gives alone, with their own processors and
seeds, on a learned-position model (GPT-2) and a rotary one (the built-in reference model)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from cuirass.config import UpstreamConfig
from cuirass.upstream.local import LocalUpstream

CHAT = "/v1/chat/completions"
QUESTIONS = [
    "Ana buys 3 apples at 4 dollars each. How much does she pay?",
    "hi",
    "A train travels at 20 km per hour for 3 hours, then at 15 km per hour for 2 hours. How far does it go?",
    "Leo has 5 bags with 6 marbles in each and gives away 7. How many are left?",
    "what is 2 + 2?",
    "Maya fills 4 boxes with 9 cookies each, keeps 6 and shares the rest among 3 friends. How many each?",
]


def bodies() -> list[dict[str, Any]]:
    """Prompts of different lengths; greedy and seeded sampling mixed."""
    return [
        {
            "model": "m",
            "messages": [{"role": "user", "content": q}],
            "max_tokens": 20 + 4 * i,
            "temperature": 0 if i % 2 else 0.8,
            "seed": 7 + i,
        }
        for i, q in enumerate(QUESTIONS)
    ]


def ban_top(tokenizer: Any) -> Any:
    def proc(input_ids: Any, scores: Any) -> Any:
        scores = scores.clone()
        scores[0, scores.argmax()] = float("-inf")
        return scores

    return proc


@pytest.fixture(scope="module", params=["tiny", "builtin:reference"])
def model_path(request: pytest.FixtureRequest, tiny_dir: Path) -> str:
    return str(tiny_dir) if request.param == "tiny" else request.param


async def _serve(
    path: str, rows: int, jobs: list[tuple[dict[str, Any], list[Any]]], together: bool, stream: bool = False
) -> tuple[list[str], float]:
    up = LocalUpstream("m", UpstreamConfig(type="local", path=path, device="cpu", max_concurrency=rows))
    await up.start()

    async def one(body: dict[str, Any], procs: list[Any]) -> str:
        if stream:
            parts = [c async for batch in up.stream(CHAT, body, processors=procs) for c in batch]
            return "".join(c["choices"][0]["delta"].get("content") or "" for c in parts if c["choices"])
        r = await up.complete(CHAT, body, processors=procs)
        return r["choices"][0]["message"]["content"]

    try:
        if together:
            texts = await asyncio.gather(*(one(b, p) for b, p in jobs))
        else:
            texts = [await one(b, p) for b, p in jobs]
        engine = up._engine
        return list(texts), engine.rows / max(1, engine.steps)
    finally:
        await up.close()


def test_together_equals_alone(model_path: str) -> None:
    jobs = [(b, [ban_top] if i == 3 else []) for i, b in enumerate(bodies())]  # one row with its own processor
    alone, mean_alone = asyncio.run(_serve(model_path, 1, jobs, together=False))
    together, mean_together = asyncio.run(_serve(model_path, 4, jobs, together=True))
    assert mean_alone == 1.0 and mean_together > 1.5  # they really shared forward passes
    assert together == alone
    streamed, _ = asyncio.run(_serve(model_path, 4, jobs, together=True, stream=True))
    assert streamed == alone


def test_a_cancelled_row_leaves_the_others_untouched(tiny_dir: Path) -> None:
    jobs = [(b, []) for b in bodies()]

    async def go() -> list[str]:
        up = LocalUpstream("m", UpstreamConfig(type="local", path=str(tiny_dir), device="cpu", max_concurrency=8))
        await up.start()
        try:
            long = {**jobs[0][0], "max_tokens": 200}
            gen = up.stream(CHAT, long)
            await gen.__anext__()  # the long one is running
            others = asyncio.gather(*(up.complete(CHAT, b) for b, _ in jobs[1:]))
            await gen.aclose()  # the client hangs up mid-batch
            return [r["choices"][0]["message"]["content"] for r in await others]
        finally:
            await up.close()

    alone, _ = asyncio.run(_serve(str(tiny_dir), 1, jobs[1:], together=False))
    assert asyncio.run(go()) == alone
