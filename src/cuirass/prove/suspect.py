"""Asking a suspect OpenAI-compatible endpoint questions: concurrent, retried, with a progress bar.

The real `openai` client does the HTTP (it retries connection errors, timeouts, 408/409/429 and 5xx
with exponential backoff, and honours `x-should-retry`). A question that still fails is recorded
with its error, not dropped silently: the report counts failures, and the tests use the answers that came.
The transcripts are hashed for the report:

    sha256 = SHA-256 of the JSON lines {"prompt": p, "text": t}, one per answered question, in order
"""

from __future__ import annotations

import dataclasses
import hashlib
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any

from cuirass.audit_log import canonical


@dataclasses.dataclass(frozen=True, slots=True)
class Endpoint:
    """Where a suspect (or control) model answers."""

    base_url: str
    model: str
    api_key: str | None = dataclasses.field(default=None, repr=False)

    def describe(self) -> dict[str, str]:
        return {"base_url": self.base_url, "model": self.model}  # never the key


@dataclasses.dataclass(frozen=True, slots=True)
class Answer:
    prompt: str
    text: str | None  # None when the question failed
    finish_reason: str | None = None
    error: str | None = None


def transcript_jsonl(answers: Sequence[Answer]) -> bytes:
    return b"".join(canonical({"prompt": a.prompt, "text": a.text}) + b"\n" for a in answers if a.text is not None)


def describe_answers(answers: Sequence[Answer], role: str, where: str) -> dict[str, Any]:
    """A row of the report's inputs table for a set of collected answers."""
    raw = transcript_jsonl(answers)
    return {
        "role": role,
        "path": where,
        "sha256": hashlib.sha256(raw).hexdigest(),
        "bytes": len(raw),
        "format": "jsonl transcripts",
        "n_texts": sum(a.text is not None for a in answers),
    }


class Suspect:
    """A chat-completions endpoint to question. One `openai.OpenAI` client, shared by the worker threads."""

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        concurrency: int = 4,
        retries: int = 4,
        timeout_s: float = 120.0,
        progress: bool = True,
    ) -> None:
        try:
            import openai
        except ModuleNotFoundError:
            raise RuntimeError("an endpoint audit needs the openai client: pip install openai") from None
        self.endpoint = endpoint
        self.concurrency = max(1, int(concurrency))
        self.progress = progress
        self._openai = openai
        self.client = openai.OpenAI(
            base_url=endpoint.base_url, api_key=endpoint.api_key or "none", max_retries=retries, timeout=timeout_s
        )

    def _one(self, prompt: str, max_tokens: int, temperature: float, seed: int | None) -> Answer:
        try:
            r = self.client.chat.completions.create(
                model=self.endpoint.model,
                max_tokens=max_tokens,
                temperature=temperature,
                messages=[{"role": "user", "content": prompt}],
                seed=self._openai.omit if seed is None else seed,  # omit: the request has no seed at all
            )
        except self._openai.OpenAIError as exc:  # retried already where the error was transient
            return Answer(prompt, None, None, f"{type(exc).__name__}: {exc}"[:300])
        if not r.choices:
            return Answer(prompt, None, None, "no choices in the response")
        c = r.choices[0]
        return Answer(prompt, c.message.content or "", c.finish_reason)

    def ask(
        self, prompts: Sequence[str], *, max_tokens: int, temperature: float, desc: str, seed: int | None = None
    ) -> list[Answer]:
        """One answer per prompt, in prompt order. With `seed`, question i asks for seed + i (servers that
        honour seeds then answer reproducibly; others ignore it)."""
        from tqdm import tqdm

        out: list[Answer | None] = [None] * len(prompts)
        with (
            ThreadPoolExecutor(self.concurrency) as pool,
            tqdm(total=len(prompts), desc=desc, unit="q", disable=not self.progress, file=sys.stderr) as bar,
        ):
            futures = {
                pool.submit(self._one, p, max_tokens, temperature, None if seed is None else seed + i): i
                for i, p in enumerate(prompts)
            }
            for fut in as_completed(futures):
                out[futures[fut]] = fut.result()
                bar.update(1)
        return [a for a in out if a is not None]

    def channels(self) -> list[Any]:
        """Channels this access adds to the context's: none for text answers (top logprobs would add one)."""
        return []

    def close(self) -> None:
        self.client.close()
