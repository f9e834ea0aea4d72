"""A human working through one conversation: turns with growing history and think times between.

Shared by every human-like actor (benign people, app backends relaying their end users, and
stealthy attackers' cover traffic), so that cover traffic is drawn from the same behaviour.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

from cuirass.lab.traffic.clock import generation_latency, think_time
from cuirass.lab.traffic.record import assistant, tokens, user

FALLBACK_REPLY = "Sure. Here is a detailed answer to your question, with the key points first."
MAX_TURNS = 8


def turns_of(
    pairs: tuple[tuple[str, str], ...], rng: random.Random, max_turns: int = MAX_TURNS
) -> list[tuple[str, str]]:
    """The turns a person actually sends: a prefix of the real conversation (some stop early)."""
    n = min(len(pairs), max_turns)
    if n > 1 and rng.random() < 0.25:
        n = rng.randint(1, n)
    return [(u, a or FALLBACK_REPLY) for u, a in pairs[:n]]


def turn_times(rng: random.Random, start: float, turns: list[tuple[str, str]]) -> list[float]:
    """When each turn is sent: the answer's generation time plus the human's think time before the next."""
    times = [start]
    for i in range(1, len(turns)):
        reply, nxt = turns[i - 1][1], turns[i][0]
        times.append(times[-1] + generation_latency(rng, tokens(reply)) + think_time(rng, len(reply), len(nxt)))
    return times


def messages_at(
    turns: list[tuple[str, str]], i: int, prefix: list[dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """The messages sent with turn i: prefix, the earlier turns with their answers, then turn i."""
    history: list[dict[str, Any]] = list(prefix or [])
    for prompt, reply in turns[:i]:
        history.append(user(prompt))
        history.append(assistant(reply))
    history.append(user(turns[i][0]))
    return history


def dialogue(
    rng: random.Random, start: float, turns: list[tuple[str, str]], prefix: list[dict[str, Any]] | None = None
) -> Iterator[tuple[float, list[dict[str, Any]], str]]:
    """(ts, messages, reply) per turn, in order."""
    for i, ts in enumerate(turn_times(rng, start, turns)):
        yield ts, messages_at(turns, i, prefix), turns[i][1]
