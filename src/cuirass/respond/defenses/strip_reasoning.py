"""`strip_reasoning`: remove the reasoning an upstream returns, optionally leaving a short summary.

Reasoning traces are what distillers want most (the step-by-step path a student imitates), and an
ordinary user rarely needs them. Two places carry them:

    in the content   <think> ... </think> blocks (also <thinking>); a block left open runs to the end;
                     a closing tag with no opening one (chat templates that open the block in the prompt)
                     makes everything before it reasoning
    in the fields    `reasoning_content` / `reasoning` of a message (whole response) or delta (stream chunk)

Options (policy `options.strip_reasoning`):
    summary:        replace removed reasoning with a summary instead of nothing (default false)
    summary_style:  "marker" (a fixed sentence, default) or "first_sentence" (the reasoning's first sentence)
    marker:         the fixed sentence (default "Reasoning omitted.")
    tags:           tag names treated as reasoning blocks (default ["think", "thinking"])
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

from cuirass import linear
from cuirass.respond.base import DefenseContext, TextDefense, register

REASONING_FIELDS = ("reasoning_content", "reasoning")
DEFAULT_MARKER = "Reasoning omitted."
# \S.*?(?:[.!?](?=\s|$)|\n|$): the mark's lookahead reads the next character; <stop> ends the sentence there.
_FIRST_SENTENCE = linear.compile(r"\S.*?(?:(?P<stop>[.!?])(?:\s|$)|\n|$)", linear.DOTALL)
_MAX_SUMMARY = 200
_ANY_TAG = linear.compile(r"</?\w+[^<>]*>")


def summarize(reasoning: str, style: str = "marker", marker: str = DEFAULT_MARKER) -> str:
    """A deterministic short stand-in for `reasoning`: the marker, or its first sentence (at most 200 chars)."""
    if style == "marker":
        return marker
    clean = _ANY_TAG.sub(lambda _: "", reasoning)
    m = _FIRST_SENTENCE.search(clean)
    if m is None:
        return marker
    first = clean[m.start() : m.end("stop") if m.start("stop") >= 0 else m.end()].strip()
    return first if len(first) <= _MAX_SUMMARY else first[: _MAX_SUMMARY - 1].rstrip() + "…"


def split_reasoning(text: str, tags: Sequence[str] = ("think", "thinking")) -> tuple[list[str], list[str]]:
    """(answer pieces, reasoning blocks): the answer is the pieces joined around the removed blocks."""
    tag = _tag_pattern(tuple(tags))
    pieces: list[str] = []
    blocks: list[str] = []
    depth, pos, block_start = 0, 0, 0
    for m in tag.finditer(text):
        if not m.group(1):  # an opening tag
            if depth == 0:
                pieces.append(text[pos : m.start()])
                block_start = m.end()
            depth += 1
        elif depth == 0:  # a closing tag with no opening one: what came before was reasoning
            blocks.append("".join(pieces) + text[pos : m.start()])
            pieces = [""]
            pos = m.end()
        else:
            depth -= 1
            if depth == 0:
                blocks.append(text[block_start : m.start()])
                pos = m.end()
    if depth > 0:  # left open (cut off by max_tokens, or the whole answer is reasoning)
        blocks.append(text[block_start:])
        pieces.append("")
    else:
        pieces.append(text[pos:])
    return pieces, blocks


@functools.lru_cache(maxsize=16)
def _tag_pattern(tags: tuple[str, ...]) -> linear.Pattern:
    """<(/?)(?:tags)\b[^<>]*> (case-insensitive), the \b written out: after a name ending in a word character
    comes ">" or a character that is neither a word character nor "<"; after one ending otherwise, a word
    character (the end of the text is a boundary too, but then no ">" follows)."""
    wordy = [t for t in tags if t and (t[-1].isalnum() or t[-1] == "_")]
    other = [t for t in tags if t not in wordy]
    branches = []
    if wordy:
        branches.append("(?:" + "|".join(map(linear.escape, wordy)) + r")(?:>|[^<>\w][^<>]*>)")
    if other:
        branches.append("(?:" + "|".join(map(linear.escape, other)) + r")\w[^<>]*>")
    return linear.compile(r"<(/?)(?:" + "|".join(branches) + ")", linear.IGNORECASE)


def strip_think(text: str, *, summary: str | None = None, tags: Sequence[str] = ("think", "thinking")) -> str:
    """`text` without reasoning blocks; with `summary`, that text stands where the first block was.

    Two answer pieces around a removed block are joined with one sensible separator: a blank line if the
    whitespace around the block held a newline, else a space (none at either end of the answer). The answer is
    built as a list, whose last part holds all its trailing whitespace, so that joining n pieces is linear.
    """
    pieces, blocks = split_reasoning(text, tags)
    if not blocks:
        return text
    out = [pieces[0]]
    blank = not pieces[0].strip()  # whether the answer so far is only whitespace
    for i, piece in enumerate(pieces[1:]):
        if summary and i == 0:  # the summary gets a paragraph of its own
            joined = "\n\n".join(p.strip("\n ") for p in ("".join(out).rstrip(), summary, piece.lstrip()) if p.strip())
            out, blank = [joined], not joined.strip()
        elif blank:
            out = [piece.lstrip()]
            blank = not out[0]
        elif not piece.strip():
            out[-1] = out[-1].rstrip()
        else:
            left = out[-1]
            trimmed, right = left.rstrip(), piece.lstrip()
            gap = left[len(trimmed) :] + piece[: len(piece) - len(right)]
            out[-1] = trimmed
            out += ["\n\n" if "\n" in gap else " ", right]
    return "".join(out)


def strip_reasoning_fields(obj: dict[str, Any], *, summary: Callable[[str], str] | None = None) -> dict[str, Any]:
    """A copy of an OpenAI response or stream chunk without reasoning fields in any choice's message/delta.

    With `summary` (whole responses only; a stream would repeat it per chunk), each non-empty field is
    replaced by `summary(field text)` instead of dropped. The input is not modified.
    """
    out = dict(obj)
    choices = []
    for choice in obj.get("choices") or ():
        choice = dict(choice)
        for holder in ("message", "delta"):
            if isinstance(choice.get(holder), dict):
                inner = dict(choice[holder])
                for field in REASONING_FIELDS:
                    value = inner.pop(field, None)
                    if summary is not None and isinstance(value, str) and value:
                        inner[field] = summary(value)
                choice[holder] = inner
        choices.append(choice)
    if "choices" in obj:
        out["choices"] = choices
    return out


@register
class StripReasoning(TextDefense):
    name = "strip_reasoning"

    def __init__(
        self,
        *,
        summary: bool = False,
        summary_style: str = "marker",
        marker: str = DEFAULT_MARKER,
        tags: Sequence[str] = ("think", "thinking"),
        **options: Any,
    ) -> None:
        super().__init__(summary=summary, summary_style=summary_style, marker=marker, tags=tags, **options)
        if summary_style not in ("marker", "first_sentence"):
            raise ValueError("strip_reasoning: summary_style must be 'marker' or 'first_sentence'")
        self.summary = bool(summary)
        self.summary_style = summary_style
        self.marker = marker
        self.tags = tuple(tags)

    def transform(self, text: str, ctx: DefenseContext) -> str:
        return self.strip(text)

    def strip(self, text: str) -> str:
        """`text` without reasoning blocks, summarised if configured."""
        if not self.summary:
            return strip_think(text, tags=self.tags)
        _pieces, blocks = split_reasoning(text, self.tags)
        if not blocks:
            return text
        return strip_think(text, summary=self._summarize(blocks[0]), tags=self.tags)

    def strip_response(self, obj: dict[str, Any]) -> dict[str, Any]:
        """A whole chat/completions response without reasoning fields or blocks (summarised if configured)."""
        out = strip_reasoning_fields(obj, summary=self._summarize if self.summary else None)
        for choice in out.get("choices") or ():
            msg = choice.get("message")
            if isinstance(msg, dict) and isinstance(msg.get("content"), str):
                msg["content"] = self.strip(msg["content"])
            elif isinstance(choice.get("text"), str):
                choice["text"] = self.strip(choice["text"])
        return out

    def strip_chunk(self, chunk: dict[str, Any]) -> dict[str, Any]:
        """A stream chunk without reasoning fields (content blocks need the whole text: see `strip`)."""
        return strip_reasoning_fields(chunk)

    def _summarize(self, reasoning: str) -> str:
        return summarize(reasoning, self.summary_style, self.marker)
