"""`watermark`: a keyed lexical watermark on the finished answer, detectable with an exact p-value.

Needs no logits (the gateway fronts remote servers): the answer is rewritten at its choice points
(contractions, synonyms, connectives, optional words, British/American spellings, hyphenation, the
serial comma, list markers, ...) to the one variant the cohort's key marks green. See `cuirass.marks.text` for the method, what a
reader notices, and what a paraphrase removes.

Options (policy config):
    strength: float = 1.0        # keyed share of choice points moved to green (lower: fewer edits, weaker)
    exclude: list[str] = []      # groups to leave alone, e.g. ["spelling"] for strictly American English,
                                 # ["markdown"] where answers are shown as raw text ("*" bullets, "1)")
    invisible: bool = false      # also an invisible U+2060 after some sentence ends (extra channel only)
"""

from __future__ import annotations

from typing import Any

from cuirass.marks.text.choices import finder_for
from cuirass.marks.text.embed import embed
from cuirass.respond.base import DefenseContext, TextDefense, register


@register
class WatermarkDefense(TextDefense):
    name = "watermark"

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.strength = float(options.get("strength", 1.0))
        if not 0.0 <= self.strength <= 1.0:
            raise ValueError("watermark strength must be in [0, 1]")
        self.finder = finder_for(tuple(options.get("exclude", ())), bool(options.get("invisible", False)))

    def transform(self, text: str, ctx: DefenseContext) -> str:
        return embed(text, ctx.key, self.strength, self.finder)
