"""Carrying out text defenses on OpenAI response objects, whole or streamed.

A streamed answer that must be rewritten is collected first, rewritten like a whole one, and then
re-streamed in as many content chunks as the upstream sent, so streaming and non-streaming clients get
the same text and a similar chunk rhythm. Unflagged traffic never comes here.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

REASONING_FIELDS = ("reasoning_content", "reasoning")

Rewrite = Callable[[str], str]


def rewrite_whole(resp: dict[str, Any], chat: bool, rewrite: Rewrite, strip_fields: bool) -> dict[str, Any]:
    """Rewrite every choice of a non-streaming response in place; returns it."""
    for choice in resp.get("choices") or ():
        if chat:
            msg = choice.get("message") or {}
            if strip_fields:
                for f in REASONING_FIELDS:
                    msg.pop(f, None)
            if isinstance(msg.get("content"), str):
                msg["content"] = rewrite(msg["content"])
        elif isinstance(choice.get("text"), str):
            choice["text"] = rewrite(choice["text"])
    return resp


def _split(text: str, n: int) -> list[str]:
    """`text` cut into at most n pieces at word boundaries (pieces join back to `text`)."""
    if n <= 1 or not text:
        return [text] if text else []
    words = text.split(" ")
    per = max(1, -(-len(words) // n))
    pieces = [" ".join(words[i : i + per]) for i in range(0, len(words), per)]
    return [p if i == 0 else " " + p for i, p in enumerate(pieces)]


def rewrite_stream(chunks: Sequence[dict[str, Any]], chat: bool, rewrite: Rewrite,
                   strip_fields: bool) -> list[dict[str, Any]]:
    """The chunk sequence a client should get instead of `chunks` (which arrived whole, in order)."""
    texts: dict[int, list[str]] = {}
    counts: dict[int, int] = {}
    for ch in chunks:
        for c in ch.get("choices") or ():
            i = c.get("index", 0)
            piece = (c.get("delta") or {}).get("content") if chat else c.get("text")
            if isinstance(piece, str) and piece:
                texts.setdefault(i, []).append(piece)
                counts[i] = counts.get(i, 0) + 1
    new_pieces = {i: _split(rewrite("".join(parts)), counts[i]) for i, parts in texts.items()}
    out: list[dict[str, Any]] = []
    emitted: dict[int, bool] = {}
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
                queue = new_pieces.get(i) or []
                if queue:
                    holder[field] = queue.pop(0)
                    emitted[i] = True
                else:
                    continue  # the rewrite is shorter than the original: drop the spare chunk
            elif chat and not holder and not c.get("finish_reason"):
                continue  # a delta emptied by stripping reasoning
            if c.get("finish_reason") and new_pieces.get(i):
                # the rewrite is longer: flush what is left before the finish
                holder[field] = "".join(new_pieces.pop(i))
            keep.append(c)
        if new.get("choices") and not keep:
            continue
        new["choices"] = keep if new.get("choices") is not None else new.get("choices")
        out.append(new)
    return out
