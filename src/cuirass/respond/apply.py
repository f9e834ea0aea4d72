"""Carrying out text defenses on OpenAI response objects, whole or streamed.

A streamed answer that must be rewritten is collected first, rewritten like a whole one, and then
re-streamed in as many content chunks as the upstream sent, so streaming and non-streaming clients get
the same text and a similar chunk rhythm. Unflagged traffic never comes here.

Bounded work. The answer on this path is the attacker's (they shape it through the prompt), so:
- every rewrite is linear in the text by construction (`linear`: RE2 patterns and scanners);
- an answer longer than the plan's `max_chars` (policy `rewrite_max_chars`) is cut there, the cut is
  rewritten, and the choice ends with finish_reason "length". A cut is the safe fallback: it bounds the work
  whatever the answer, the flagged account still gets only defended text (passing a long answer through
  unrewritten would hand over a clean answer for the price of making it long), it costs no second upstream
  call (as a decoy would), and clients already handle "length" as an ordinary max_tokens stop;
- the async entry points run the rewrite in a worker thread. RE2 releases the GIL while it matches, and the
  rest is Python that gives the GIL up every switch interval (5 ms), so the event loop keeps serving other
  requests during a rewrite (measured in tests/respond/test_bounded_rewrite.py). A process pool with a
  deadline was not needed: the rewrite closes over the cohort's keys and the canary ledger's callback, and with
  a linear rewrite and a cap there is no runaway worker to kill.
"""

from __future__ import annotations

import asyncio
import collections
import copy
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cuirass.respond.responder import Plan

REASONING_FIELDS = ("reasoning_content", "reasoning")

Rewrite = Callable[[str], str]


def _same(text: str) -> str:
    return text


def _cut(text: str, max_chars: int | None) -> tuple[str, bool]:
    """`text` cut at `max_chars` characters, and whether it was."""
    if max_chars is None or len(text) <= max_chars:
        return text, False
    return text[:max_chars], True


def rewrite_whole(
    resp: dict[str, Any], chat: bool, rewrite: Rewrite, strip_fields: bool, max_chars: int | None = None
) -> dict[str, Any]:
    """Rewrite every choice of a non-streaming response in place (each cut at `max_chars` first); returns it."""
    for choice in resp.get("choices") or ():
        if chat:
            msg = choice.get("message") or {}
            if strip_fields:
                for f in REASONING_FIELDS:
                    msg.pop(f, None)
            holder, field = msg, "content"
        else:
            holder, field = choice, "text"
        if isinstance(holder.get(field), str):
            text, cut = _cut(holder[field], max_chars)
            holder[field] = rewrite(text)
            if cut:
                choice["finish_reason"] = "length"
    return resp


def _split(text: str, n: int) -> list[str]:
    """`text` cut into at most n pieces at word boundaries (pieces join back to `text`)."""
    if n <= 1 or not text:
        return [text] if text else []
    words = text.split(" ")
    per = max(1, -(-len(words) // n))
    pieces = [" ".join(words[i : i + per]) for i in range(0, len(words), per)]
    return [p if i == 0 else " " + p for i, p in enumerate(pieces)]


def rewrite_stream(
    chunks: Sequence[dict[str, Any]], chat: bool, rewrite: Rewrite, strip_fields: bool, max_chars: int | None = None
) -> list[dict[str, Any]]:
    """The chunk sequence a client should get instead of `chunks` (which arrived whole, in order); each
    choice's text is cut at `max_chars` before it is rewritten, and its finish_reason then says "length"."""
    texts: dict[int, list[str]] = {}
    counts: dict[int, int] = {}
    for ch in chunks:
        for c in ch.get("choices") or ():
            i = c.get("index", 0)
            piece = (c.get("delta") or {}).get("content") if chat else c.get("text")
            if isinstance(piece, str) and piece:
                texts.setdefault(i, []).append(piece)
                counts[i] = counts.get(i, 0) + 1
    new_pieces: dict[int, collections.deque[str]] = {}
    cut_choices = set()
    for i, parts in texts.items():
        text, cut = _cut("".join(parts), max_chars)
        new_pieces[i] = collections.deque(_split(rewrite(text), counts[i]))
        if cut:
            cut_choices.add(i)
    out: list[dict[str, Any]] = []
    for ch in chunks:
        new = copy.deepcopy(ch)
        keep = []
        for c in new.get("choices") or ():
            i = c.get("index", 0)
            holder = c.get("delta") if chat else c
            if holder is None:
                keep.append(c)
                continue
            if strip_fields:
                for f in REASONING_FIELDS:
                    holder.pop(f, None)
            field = "content" if chat else "text"
            piece = holder.get(field)
            if isinstance(piece, str) and piece:
                queue = new_pieces.get(i)
                if queue:
                    holder[field] = queue.popleft()
                else:
                    continue  # the rewrite is shorter than the original: drop the spare chunk
            elif chat and not holder and not c.get("finish_reason"):
                continue  # a delta emptied by stripping reasoning
            if c.get("finish_reason") and new_pieces.get(i):
                # the rewrite is longer: flush what is left before the finish
                holder[field] = "".join(new_pieces.pop(i))
            if c.get("finish_reason") and i in cut_choices:
                c["finish_reason"] = "length"
            keep.append(c)
        if new.get("choices") and not keep:
            continue
        new["choices"] = keep if new.get("choices") is not None else new.get("choices")
        out.append(new)
    return out


async def rewrite_response(resp: dict[str, Any], chat: bool, plan: Plan) -> dict[str, Any]:
    """`rewrite_whole` for a plan, in a worker thread (the event loop goes on serving meanwhile)."""
    return await asyncio.to_thread(rewrite_whole, resp, chat, plan.rewrite or _same, plan.strip_fields, plan.max_chars)


async def rewrite_chunks(chunks: Sequence[dict[str, Any]], chat: bool, plan: Plan) -> list[dict[str, Any]]:
    """`rewrite_stream` for a plan, in a worker thread (the event loop goes on serving meanwhile)."""
    return await asyncio.to_thread(
        rewrite_stream, chunks, chat, plan.rewrite or _same, plan.strip_fields, plan.max_chars
    )
