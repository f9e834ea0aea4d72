"""The final answer of a worked solution, found the way answer checkers find it.

Distillers keep a harvested solution only if its final answer checks out, so a perturbation may touch
everything except the final answer. Conventions, most explicit first (the first one present wins):

    "#### 42"                     GSM8K
    "\\boxed{42}"                 MATH / LaTeX answers (the last box)
    "final answer is 42" / "Final answer: 42"
    "the answer is 42" / "Answer: 42"
    the last number in the text   the fallback most checkers use

`protected_start` is where the untouchable tail begins: the start of the line (for "####" and boxes) or of
the sentence (for the others) that holds the answer. Perturbations edit only text before it, so neither the
answer nor anything after it (where a last-number checker looks) changes.
"""

from __future__ import annotations

import dataclasses
import re

# A number as written in solutions: 1,234.5  .75  42  (no sign: a leading '-' is usually an operator).
NUMBER = r"(?:(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+)"
_NUMBER_RE = re.compile(NUMBER)
_HASHES = re.compile(r"^[ \t]*####[ \t]*(?P<v>[^\n]*)", re.M)
_BOXED = re.compile(r"\\boxed\s*\{")
_FINAL = re.compile(r"final\s+answer\s*(?:is|:|=)\s*:?\s*\$?\\?\$?\s*(?P<v>-?" + NUMBER + ")", re.I)
_ANSWER = re.compile(r"\banswer\s*(?:is|:|=)\s*:?\s*\$?\\?\$?\s*(?P<v>-?" + NUMBER + ")", re.I)
_SENTENCE_END = re.compile(r"[.!?](?=\s)|\n")


@dataclasses.dataclass(frozen=True, slots=True)
class FinalAnswer:
    value: str  # the answer as written (commas kept), e.g. "70,000"
    convention: str  # "hashes" | "boxed" | "final_answer" | "answer_is" | "last_number"
    start: int  # span of the value in the text
    end: int
    protected_start: int  # nothing at or after this offset may change

    @property
    def normalized(self) -> str:
        """The value without thousands separators or surrounding space, as checkers compare it."""
        return self.value.replace(",", "").strip()


def _line_start(text: str, pos: int) -> int:
    return text.rfind("\n", 0, pos) + 1


def _sentence_start(text: str, pos: int) -> int:
    start = 0
    for m in _SENTENCE_END.finditer(text, 0, pos):
        start = m.end()
    while start < pos and text[start].isspace():
        start += 1
    return start


def _boxed(text: str) -> tuple[int, int] | None:
    """Span of the content of the last \\boxed{...} (braces balanced), or None."""
    last = None
    for m in _BOXED.finditer(text):
        depth, i = 1, m.end()
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        if depth == 0:
            last = (m.end(), i - 1)
    return last


def find_final_answer(text: str) -> FinalAnswer | None:
    """The final answer under the most explicit convention present, or None if the text has no number."""
    hashes = list(_HASHES.finditer(text))
    if hashes:
        m = hashes[-1]
        return FinalAnswer(m.group("v").strip(), "hashes", m.start("v"), m.end("v"), _line_start(text, m.start()))
    box = _boxed(text)
    if box:
        return FinalAnswer(text[box[0]:box[1]], "boxed", box[0], box[1], _line_start(text, box[0]))
    for pattern, name in ((_FINAL, "final_answer"), (_ANSWER, "answer_is")):
        found = list(pattern.finditer(text))
        if found:
            m = found[-1]
            protect = max(_line_start(text, m.start()), _sentence_start(text, m.start()))
            return FinalAnswer(m.group("v"), name, m.start("v"), m.end("v"), protect)
    numbers = list(_NUMBER_RE.finditer(text))
    if not numbers:
        return None
    m = numbers[-1]
    protect = max(_line_start(text, m.start()), _sentence_start(text, m.start()))
    return FinalAnswer(m.group(), "last_number", m.start(), m.end(), protect)


def same_final_answer(original: str, perturbed: str) -> bool:
    """Whether a checker reads the same final answer, under the same convention, from both texts."""
    a, b = find_final_answer(original), find_final_answer(perturbed)
    if a is None or b is None:
        return a is b
    return (a.convention, a.normalized) == (b.convention, b.normalized) and (
        original[a.protected_start:] == perturbed[b.protected_start:])
