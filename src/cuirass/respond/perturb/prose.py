"""Light damage to explanatory prose: the content stays, its order and confidence drift.

Prose has no checker to survive, and a legitimate-looking answer matters more than damage here, so both
variants are gentle:

    reorder_sentences  two adjacent supporting sentences of a paragraph trade places (the first stays)
    hedge              a confident statement gets a hedge ("is" -> "is usually")

Only plain paragraphs are touched: never code blocks, headings, lists, tables or quotes; and, as for math,
nothing from the sentence holding the last number on (see `answer.py`), so a number-checking filter reads
the same answer.
"""

from __future__ import annotations

import itertools
import random
import re

from cuirass.respond.perturb.answer import find_final_answer, same_final_answer
from cuirass.respond.perturb.base import Perturber

_FENCE = re.compile(r"^[ \t]*```.*?^[ \t]*```[^\n]*$", re.M | re.S)
_PARAGRAPH = re.compile(r"[^\n]+(?:\n[^\n]+)*")
_STRUCTURED = re.compile(r"^\s*(?:#|[-*+>|]|\d+[.)]\s|```)")
_SENTENCE = re.compile(r"(?:[^.!?\n]|[.!?]+(?=[^\s.!?]))+[.!?]*")
# A verb followed by what it qualifies (not a determiner: "Here are the ideas" takes no hedge).
_VERB = re.compile(r"(?<!\bHere )(?<!\bThere )(?<!\bhere )(?<!\bthere )\b(is|are|was|were|can|will|has|have)\s"
                   r"(?!(?:not|the|a|an|this|these|that|those|my|your|our|their|its|his|her|no)\b)(?=[a-z])")
_HEDGES = ["usually", "often", "generally", "typically"]
_PREFIXES = ["In most cases, ", "Generally, ", "Typically, "]
_NO_PREFIX = {"I", "Here", "There", "Yes", "No", "Sure", "Thanks", "Thank", "Hello", "Hi", "Please", "Note"}


def _plain_paragraphs(text: str) -> list[tuple[int, int]]:
    """Spans of paragraphs outside code fences that are ordinary running text."""
    fenced = [m.span() for m in _FENCE.finditer(text)]
    out = []
    for m in _PARAGRAPH.finditer(text):
        if any(a <= m.start() < b for a, b in fenced):
            continue
        if any(_STRUCTURED.match(line) for line in m.group().split("\n")):
            continue
        out.append(m.span())
    return out


def _sentences(text: str, start: int, end: int) -> list[tuple[int, int]]:
    spans = []
    for m in _SENTENCE.finditer(text, start, end):
        seg = m.group()
        if seg.strip():
            lead = len(seg) - len(seg.lstrip())
            spans.append((m.start() + lead, m.start() + len(seg.rstrip())))
    return spans


class ProsePerturber(Perturber):
    content_type = "prose"
    variants = ("reorder_sentences", "hedge")

    def apply(self, text: str, variant: str, rng: random.Random) -> str | None:
        final = find_final_answer(text)
        limit = final.protected_start if final else len(text)
        paragraphs = [(a, min(b, limit)) for a, b in _plain_paragraphs(text) if a < limit]
        if not paragraphs:
            return None
        return getattr(self, f"_{variant}")(text, paragraphs, rng)

    def preserves(self, original: str, perturbed: str) -> bool:
        return same_final_answer(original, perturbed)

    def _reorder_sentences(self, text: str, paragraphs: list[tuple[int, int]], rng: random.Random) -> str | None:
        pairs = []
        for start, end in paragraphs:
            sents = _sentences(text, start, end)
            pairs += [(a, b) for a, b in itertools.pairwise(sents[1:]) if text[slice(*a)] != text[slice(*b)]]
        if not pairs:
            return None
        (a0, a1), (b0, b1) = rng.choice(pairs)
        first, second = text[a0:a1], text[b0:b1]
        if not (first.endswith((".", "!", "?")) and second.endswith((".", "!", "?"))):
            return None
        return text[:a0] + second + text[a1:b0] + first + text[b1:]

    def _hedge(self, text: str, paragraphs: list[tuple[int, int]], rng: random.Random) -> str | None:
        sentences = [s for p in paragraphs for s in _sentences(text, *p)]
        if not sentences:
            return None
        verbs = [m for s in sentences for m in _VERB.finditer(text, *s)]
        if verbs:
            m = rng.choice(verbs)
            return text[: m.end()] + rng.choice(_HEDGES) + " " + text[m.end():]
        start, end = rng.choice(sentences)
        word = text[start:].split(" ", 1)[0]
        if not (word[:1].isupper() and word[1:2].islower()) or word in _NO_PREFIX or text[end - 1] != ".":
            return None
        return text[:start] + rng.choice(_PREFIXES) + text[start].lower() + text[start + 1:]
