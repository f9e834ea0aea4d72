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

from cuirass.engine.reasoning import CLOSE, OPEN  # how a reasoning model writes its trace in one text

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


def _rewrite_with_trace(reasoning: str, answer: str, rewrite: Rewrite) -> tuple[str, str]:
    """Rewrite a trace sent apart (reasoning_content) and its answer as the one reply the model wrote,
    `<think>trace</think>answer`, and split the result back: a defense sees the same text, and the client
    gets the same defended words, whether or not the upstream runs a reasoning parser. A trace that holds a
    tag itself, or a rewrite that moved one, cannot be split back safely: each part is rewritten alone then."""
    if OPEN in reasoning or CLOSE in reasoning:
        return rewrite(reasoning), rewrite(answer)
    # the line breaks a reasoning parser drops after each tag, put back so line-based rewrites see the answer line
    joined = rewrite(f"{OPEN}\n{reasoning}{CLOSE}\n\n{answer}")
    if joined.startswith(OPEN) and joined.count(CLOSE) == 1 and joined.count(OPEN) == 1:
        trace, _, rest = joined[len(OPEN) :].partition(CLOSE)
        return trace.removeprefix("\n"), rest.removeprefix("\n\n")
    return rewrite(reasoning), rewrite(answer)


def rewrite_whole(
    resp: dict[str, Any], chat: bool, rewrite: Rewrite, strip_fields: bool, max_chars: int | None = None
) -> dict[str, Any]:
    """Rewrite every choice of a non-streaming response in place (each text cut at `max_chars` first; a
    trace sent apart is rewritten with its answer unless `strip_fields` drops it); returns it."""
    for choice in resp.get("choices") or ():
        if chat:
            holder, field = choice.get("message") or {}, "content"
        else:
            holder, field = choice, "text"
        if chat and strip_fields:
            for f in REASONING_FIELDS:
                holder.pop(f, None)
        trace = next((f for f in REASONING_FIELDS if chat and isinstance(holder.get(f), str)), None)
        if not isinstance(holder.get(field), str):
            continue
        text, cut = _cut(holder[field], max_chars)
        if trace is None:
            holder[field] = rewrite(text)
        else:
            reasoning, cut_trace = _cut(holder[trace], max_chars)
            holder[trace], holder[field] = _rewrite_with_trace(reasoning, text, rewrite)
            cut = cut or cut_trace
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
    """The chunk sequence a client should get instead of `chunks` (which arrived whole, in order). Each
    choice's answer, and its trace unless `strip_fields` drops it, is cut at `max_chars`, rewritten (the
    two together, as in `rewrite_whole`), and re-split over as many chunks as carried it, the last of them
    taking whatever is left; a cut choice's finish_reason then says "length"."""
    fields = ("content", *(() if strip_fields else REASONING_FIELDS)) if chat else ("text",)
    texts: dict[tuple[int, str], list[str]] = {}
    last: dict[tuple[int, str], int] = {}  # the last chunk that carries each (choice, field)
    for n, ch in enumerate(chunks):
        for c in ch.get("choices") or ():
            holder = (c.get("delta") or {}) if chat else c
            for field in fields:
                piece = holder.get(field)
                if isinstance(piece, str) and piece:
                    key = (c.get("index", 0), field)
                    texts.setdefault(key, []).append(piece)
                    last[key] = n
    new_text: dict[tuple[int, str], str] = {}
    cut_choices = set()
    for i in {key[0] for key in texts}:
        parts = {f: _cut("".join(texts[i, f]), max_chars) for f in fields if (i, f) in texts}
        if any(cut for _, cut in parts.values()):
            cut_choices.add(i)
        answer_field = fields[0]
        answer = parts.pop(answer_field, ("", False))[0]
        if parts:  # a trace (one reasoning field: upstreams send one or the other)
            trace_field, (trace, _) = next(iter(parts.items()))
            new_text[i, trace_field], new_text[i, answer_field] = _rewrite_with_trace(trace, answer, rewrite)
        else:
            new_text[i, answer_field] = rewrite(answer)
    pending = {key: collections.deque(_split(new_text[key], len(texts[key]))) for key in texts if key in new_text}
    out: list[dict[str, Any]] = []
    for n, ch in enumerate(chunks):
        new = copy.deepcopy(ch)
        keep = []
        for c in new.get("choices") or ():
            i = c.get("index", 0)
            holder = c.get("delta") if chat else c
            if holder is None:
                keep.append(c)
                continue
            if chat and strip_fields:
                for f in REASONING_FIELDS:
                    holder.pop(f, None)
            blanked = False
            for field in fields:
                piece = holder.get(field)
                if not (isinstance(piece, str) and piece):
                    continue
                queue = pending.get((i, field))
                if last.get((i, field)) == n:  # the last carrier takes the rest (a longer rewrite)
                    holder[field] = "".join(queue or ())
                elif queue:
                    holder[field] = queue.popleft()
                else:  # the rewrite is shorter than the original: this chunk carries none of it
                    blanked = True
                    if chat:
                        del holder[field]
                    else:
                        holder[field] = ""
            if not c.get("finish_reason") and ((chat and not holder) or (blanked and not holder.get("text"))):
                continue  # a delta emptied by stripping reasoning, or a piece a shorter rewrite left empty
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
