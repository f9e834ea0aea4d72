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

import bisect
import itertools
import random

from cuirass import linear
from cuirass.marks.answer import find_final_answer, same_final_answer
from cuirass.respond.perturb.base import Perturber
from cuirass.respond.perturb.equations import SENTENCE

_FENCE = linear.compile(r"^[ \t]*```.*?^[ \t]*```[^\n]*$", linear.MULTILINE | linear.DOTALL)
_PARAGRAPH = linear.compile(r"[^\n]+(?:\n[^\n]+)*")
_STRUCTURED = linear.compile(r"^\s*(?:#|[-*+>|]|\d+[.)]\s|```)")
_STRUCTURED_LINES = linear.compile(r"^[^\S\n]*(?:#|[-*+>|]|\d+[.)][^\S\n]|```)", linear.MULTILINE)  # the same, in place


def structured_line(line: str) -> bool:
    """A heading, list item, quote, table row or fence line (_STRUCTURED; its first character tested first)."""
    first = line.lstrip()[:1]
    return (first in ("#", "-", "*", "+", ">", "|", "`") or first.isdecimal()) and _STRUCTURED.match(line) is not None


@linear.per_text
def structured_starts(text: str) -> list[int]:
    """The starts of the structured lines of `text` (structured_line), found in one pass."""
    return [a for a, _ in _STRUCTURED_LINES.spans(text)]


def structured_paragraph(text: str, a: int, b: int) -> bool:
    """Whether text[a:b], lines from a line start, holds a structured line (its last one cut at b)."""
    starts = structured_starts(text)
    last = text.rfind("\n", a, b) + 1 or a
    if last > a and (i := bisect.bisect_left(starts, a)) < len(starts) and starts[i] < last:
        return True
    if b == len(text) or text[b] == "\n":
        i = bisect.bisect_left(starts, last)
        return i < len(starts) and starts[i] == last
    return structured_line(text[last:b])


# A verb followed by what it qualifies: \b(is|are|...)\s, then a lower-case letter; not after "Here "/"There "
# (a word of its own) nor before a determiner ("Here are the ideas" takes no hedge). The engine finds the verb
# and the letter; _verbs checks the words on either side.
_VERB = linear.compile(r"(?:is|are|was|were|can|will|has|have)\s", before=r"[^\w]", after=r"[a-z]")
_NOT_AFTER = ("Here ", "There ", "here ", "there ")
_NOT_BEFORE = tuple("not the a an this these that those my your our their its his her no".split())
_HEDGES = ["usually", "often", "generally", "typically"]
_PREFIXES = ["In most cases, ", "Generally, ", "Typically, "]
_NO_PREFIX = {"I", "Here", "There", "Yes", "No", "Sure", "Thanks", "Thank", "Hello", "Hi", "Please", "Note"}


@linear.per_text
def _plain_paragraphs(text: str) -> list[tuple[int, int]]:
    """Spans of paragraphs outside code fences that are ordinary running text."""
    fenced = _FENCE.spans(text)  # sorted, disjoint
    fence_starts = [a for a, _ in fenced]
    out = []
    for a, b in _PARAGRAPH.spans(text):
        k = bisect.bisect_right(fence_starts, a) - 1
        if (k >= 0 and a < fenced[k][1]) or structured_paragraph(text, a, b):
            continue
        out.append((a, b))
    return out


def _sentences(text: str, paragraphs: list[tuple[int, int]]) -> list[list[tuple[int, int]]]:
    """The sentences of each paragraph (sorted, disjoint spans), trimmed of surrounding whitespace.

    One pass over the text: a sentence never crosses a line, and a paragraph starts on a line, so the
    sentences found from the start of the text are those found from each paragraph's start."""
    out: list[list[tuple[int, int]]] = [[] for _ in paragraphs]
    if not paragraphs:
        return out
    starts = [a for a, _ in paragraphs]
    for m_start, m_end in SENTENCE.spans(text, 0, paragraphs[-1][1]):
        k = bisect.bisect_right(starts, m_start) - 1
        if k < 0 or m_end > paragraphs[k][1]:
            continue
        seg = text[m_start:m_end]
        if seg.strip():
            lead = len(seg) - len(seg.lstrip())
            out[k].append((m_start + lead, m_start + len(seg.rstrip())))
    return out


def _word_at(text: str, pos: int, end: int, word: str) -> bool:
    """Whether text[pos:end] starts with `word` as a whole word (what follows, before `end`, is no word char)."""
    after = pos + len(word)
    return text.startswith(word, pos, end) and (after == end or not (text[after].isalnum() or text[after] == "_"))


def _verbs(text: str, sentences: list[tuple[int, int]]) -> list[int]:
    """Where a hedge may go in the sentences (sorted, disjoint): right after each verb that takes one (see
    _VERB), in order. One pass: verbs do not overlap, so those found from the start of the text are those
    found from each sentence's start, less the ones whose following letter lies past the sentence's end."""
    out: list[int] = []
    if not sentences:
        return out
    starts = [a for a, _ in sentences]
    for a, b in _VERB.spans(text, 0, sentences[-1][1]):
        k = bisect.bisect_right(starts, a) - 1
        if k < 0 or b >= sentences[k][1]:  # the letter after the verb must be inside the sentence
            continue
        end = sentences[k][1]
        after_here = any(
            a >= len(w)
            and text.startswith(w, a - len(w), a)
            and (a == len(w) or not (text[a - len(w) - 1].isalnum() or text[a - len(w) - 1] == "_"))
            for w in _NOT_AFTER
        )
        if not after_here and not any(_word_at(text, b, end, w) for w in _NOT_BEFORE):
            out.append(b)
    return out


class ProsePerturber(Perturber):
    content_type = "prose"
    variants = ("reorder_sentences", "hedge")

    def apply(self, text: str, variant: str, rng: random.Random) -> str | None:
        final = find_final_answer(text)
        limit = final.protected_start if final else len(text)
        paragraphs = [(a, min(b, limit)) for a, b in _plain_paragraphs(text) if a < limit]
        if not paragraphs:
            return None
        rewritten: str | None = getattr(self, f"_{variant}")(text, paragraphs, rng)
        return rewritten

    def preserves(self, original: str, perturbed: str) -> bool:
        return same_final_answer(original, perturbed)

    def _reorder_sentences(self, text: str, paragraphs: list[tuple[int, int]], rng: random.Random) -> str | None:
        pairs = []
        for sents in _sentences(text, paragraphs):
            pairs += [(a, b) for a, b in itertools.pairwise(sents[1:]) if text[slice(*a)] != text[slice(*b)]]
        if not pairs:
            return None
        (a0, a1), (b0, b1) = rng.choice(pairs)
        first, second = text[a0:a1], text[b0:b1]
        if not (first.endswith((".", "!", "?")) and second.endswith((".", "!", "?"))):
            return None
        return text[:a0] + second + text[a1:b0] + first + text[b1:]

    def _hedge(self, text: str, paragraphs: list[tuple[int, int]], rng: random.Random) -> str | None:
        sentences = [s for sents in _sentences(text, paragraphs) for s in sents]
        if not sentences:
            return None
        verbs = _verbs(text, sentences)
        if verbs:
            end = rng.choice(verbs)
            return text[:end] + rng.choice(_HEDGES) + " " + text[end:]
        start, end = rng.choice(sentences)
        word = text[start:].split(" ", 1)[0]
        if not (word[:1].isupper() and word[1:2].islower()) or word in _NO_PREFIX or text[end - 1] != ".":
            return None
        return text[:start] + rng.choice(_PREFIXES) + text[start].lower() + text[start + 1 :]
