"""Send a workload through a gateway over HTTP with the real `openai` client, a few requests at a time.

Each account has its own client: its API key, its user agent, and its own source address on the loopback
network (127.0.x.y: the gateway logs a different client IP per benign user, two shared proxy addresses for
the bulk campaign), so detection sees the same infrastructure signals it would see in production.
Requests are sent in the workload's order by `concurrency` worker threads; what comes back is recorded
as plain data: exactly what the caller received (a defended reply, a decoy's reply, or an error), the
answer (`content`) and, apart from it, the reasoning trace (`reasoning_content`) when the gateway sent one.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from cuirass.lab.distill.gateway import MODEL
from cuirass.lab.distill.workload import Request
from cuirass.models.problems import reasoned_text


@dataclasses.dataclass(frozen=True, slots=True)
class Exchange:
    """A request and what its sender got back."""

    request: Request
    reply: str | None  # the answer (`content`); None when the gateway refused or failed
    error: str | None
    started: float
    seconds: float
    reasoning: str | None = None  # the reasoning trace (`reasoning_content`), when the gateway sent one

    @property
    def question(self) -> str:  # `Worked`: the attacker trains on the problem it asked ...
        question: str = self.request.problem.question
        return question

    @property
    def solution(self) -> str:  # ... and everything it received: the trace back in its block, then the answer
        return with_trace(self.reasoning, self.reply or "")

    def to_dict(self) -> dict[str, Any]:
        r = self.request
        return {
            "role": r.role,
            "account": r.account,
            "ip": r.ip,
            "prompt": r.prompt,
            "seed": r.seed,
            "answer": r.problem.answer,
            "reasoning": self.reasoning,
            "reply": self.reply,
            "error": self.error,
            "started": round(self.started, 3),
            "seconds": round(self.seconds, 3),
        }


def with_trace(reasoning: str | None, answer: str) -> str:
    """A reasoning model's whole reply as the teacher wrote it: the trace in its `<think>` block, then the
    answer (the answer alone when there is no trace, e.g. stripped)."""
    return reasoned_text(reasoning, answer) if reasoning else answer


class _Clients:
    """One openai client per account (created on first use; httpx clients are thread-safe)."""

    def __init__(self, base_url: str, keys: dict[str, str]) -> None:
        self.base_url, self.keys = base_url, keys
        self._made: dict[str, Any] = {}
        self._lock = threading.Lock()

    def get(self, r: Request) -> Any:
        import httpx
        import openai

        with self._lock:
            if r.account not in self._made:
                headers = {"User-Agent": r.user_agent} if r.user_agent else None
                http = httpx.Client(
                    transport=httpx.HTTPTransport(local_address=r.ip),
                    headers=headers,
                    timeout=httpx.Timeout(600.0, connect=10.0),
                )
                self._made[r.account] = openai.OpenAI(
                    base_url=self.base_url,
                    api_key=self.keys[r.account],
                    max_retries=0,
                    # openai annotates httpx2.Client but accepts (and checks for) a legacy httpx.Client too
                    http_client=http,  # type: ignore[arg-type]
                    default_headers=headers or {},
                )
            return self._made[r.account]

    def close(self) -> None:
        for c in self._made.values():
            c.close()


def send(
    requests: Sequence[Request],
    base_url: str,
    keys: dict[str, str],
    *,
    max_tokens: int,
    concurrency: int = 2,
    progress: bool = False,
    desc: str = "harvest",
) -> list[Exchange]:
    """Every request, in order, `concurrency` at a time; results in request order."""
    import openai
    from tqdm import tqdm

    clients = _Clients(base_url, keys)
    bar = tqdm(total=len(requests), desc=desc, unit="req", disable=not progress, mininterval=1.0)

    def one(r: Request) -> Exchange:
        t0, started = time.perf_counter(), time.time()
        try:
            out = clients.get(r).chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": r.prompt}], seed=r.seed, max_tokens=max_tokens
            )
            msg = out.choices[0].message
            reply, error = msg.content or "", None
            reasoning = getattr(msg, "reasoning_content", None)  # an extra field: the SDK keeps what it does not know
        except openai.APIError as exc:
            reply, error, reasoning = None, f"{type(exc).__name__}: {getattr(exc, 'message', exc)}", None
        bar.update(1)
        trace = reasoning if isinstance(reasoning, str) and reasoning else None
        return Exchange(r, reply, error, started, time.perf_counter() - t0, trace)

    try:
        with ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="lab-client") as pool:
            return list(pool.map(one, requests))
    finally:
        bar.close()
        clients.close()
