"""Reasoning parsers: split a reasoning model's `<think> ... </think>` block off its answer, as text streams in.

The convention is vLLM's `--reasoning-parser` (deepseek_r1, qwen3) and DeepSeek's API: a chat completion
carries the block's text as `message.reasoning_content` and the answer as `content`; a stream sends
`delta.reasoning_content` chunks, then `delta.content` chunks. Only a reply that opens with the tag has a
reasoning block; a block never closed (cut by max_tokens, a stop string or a client that left) is all
reasoning. Whitespace right after either tag is dropped (the model writes a line break there), everything
else is kept byte for byte.

Linear time: every character is looked at a bounded number of times, and at most len("</think>") - 1
characters are held back between deltas (a tag split across tokens).
"""

from __future__ import annotations

PARSERS = ("think",)
OPEN, CLOSE = "<think>", "</think>"


def _partial_suffix(text: str, tag: str) -> int:
    """Length of the longest end of `text` that is the start of `tag` (and not the whole tag)."""
    for n in range(min(len(text), len(tag) - 1), 0, -1):
        if text.endswith(tag[:n]):
            return n
    return 0


class ThinkParser:
    """Feed text deltas in order; each call returns the (reasoning, content) text it can release so far."""

    def __init__(self) -> None:
        self._state = "start"  # start -> (reasoning-lead -> reasoning -> content-lead | content) -> content
        self._held = ""

    def feed(self, text: str) -> tuple[str, str]:
        reasoning, content = "", ""
        text = self._held + text
        self._held = ""
        while text:
            if self._state == "start":
                if text.startswith(OPEN):
                    text, self._state = text[len(OPEN) :], "reasoning-lead"
                elif OPEN.startswith(text):  # too short to tell yet
                    self._held, text = text, ""
                else:
                    self._state = "content"
            elif self._state in ("reasoning-lead", "content-lead"):
                text = text.lstrip()
                if text:
                    self._state = self._state.split("-")[0]
            elif self._state == "reasoning":
                end = text.find(CLOSE)
                if end >= 0:
                    reasoning += text[:end]
                    text, self._state = text[end + len(CLOSE) :], "content-lead"
                else:
                    keep = _partial_suffix(text, CLOSE)
                    reasoning += text[: len(text) - keep]
                    self._held, text = text[len(text) - keep :], ""
            else:
                content += text
                text = ""
        return reasoning, content

    def finish(self) -> tuple[str, str]:
        """What is still held back when the text ends: a partial tag is kept as the text it is."""
        held, self._held = self._held, ""
        if self._state == "reasoning":
            return held, ""
        return "", held


def split(text: str, parser: str = "think") -> tuple[str | None, str]:
    """(reasoning or None when the reply has no block, content) of a whole reply."""
    if parser not in PARSERS:
        raise ValueError(f"unknown reasoning parser {parser!r}: one of {PARSERS}")
    p = ThinkParser()
    r1, c1 = p.feed(text)
    r2, c2 = p.finish()
    has_block = text.startswith(OPEN)
    return (r1 + r2 if has_block else None), c1 + c2
