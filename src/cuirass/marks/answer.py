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

Everything here is linear in the text (the patterns run on RE2, the box is found in one pass): this runs on
every answer to a flagged account, and the attacker shapes that answer.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Iterator

from cuirass import linear

# A number as written in solutions: 1,234.5  .75  42  (no sign: a leading '-' is usually an operator).
NUMBER = r"(?:(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+)"
_NUMBER_RE = linear.compile(NUMBER)
_HASHES = linear.compile(r"^[ \t]*####[ \t]*(?P<v>[^\n]*)", linear.MULTILINE)
_BOXED = linear.compile(r"\\boxed\s*\{")
_FINAL = linear.compile(r"final\s+answer\s*(?:is|:|=)\s*:?\s*\$?\\?\$?\s*(?P<v>-?" + NUMBER + ")", linear.IGNORECASE)
_ANSWER = linear.compile(
    r"answer\s*(?:is|:|=)\s*:?\s*\$?\\?\$?\s*(?P<v>-?" + NUMBER + ")", linear.IGNORECASE, before=r"[^\w]"
)  # \banswer
_STOP_SPACE = linear.compile(r"[.!?]\s")


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


def _last(matches: Iterator[linear.Match]) -> linear.Match | None:
    return next(iter(collections.deque(matches, maxlen=1)), None)


def _line_start(text: str, pos: int) -> int:
    return text.rfind("\n", 0, pos) + 1


def _sentence_start(text: str, pos: int) -> int:
    """Where the sentence holding `pos` starts: after the last newline, or the last [.!?] followed by
    whitespace, before `pos` (whitespace skipped)."""
    start = text.rfind("\n", 0, pos) + 1
    for m in _STOP_SPACE.finditer(text, start, pos):  # no newline in this range: only the mark ends a sentence
        start = m.start() + 1
    while start < pos and text[start].isspace():
        start += 1
    return start


def _boxed(text: str) -> tuple[int, int] | None:
    """Span of the content of the last \\boxed{...} (braces balanced), or None.

    One pass pairs every "{" with its "}" (a stack); the content of a box runs to the pair of its brace. An
    unmatched "}" closes nothing, as when counting depth from the box on.
    """
    opens = {m.end() - 1 for m in _BOXED.finditer(text)}
    if not opens:
        return None
    stack: list[int] = []
    last = None
    for i, ch in enumerate(text):
        if ch == "{":
            stack.append(i)
        elif ch == "}" and stack:
            j = stack.pop()
            if j in opens and (last is None or j > last[0] - 1):
                last = (j + 1, i)
    return last


@linear.per_text
def find_final_answer(text: str) -> FinalAnswer | None:
    """The final answer under the most explicit convention present, or None if the text has no number."""
    if (h := _last(_HASHES.finditer(text))) is not None:
        return FinalAnswer(h.group("v").strip(), "hashes", h.start("v"), h.end("v"), _line_start(text, h.start()))
    box = _boxed(text)
    if box:
        return FinalAnswer(text[box[0] : box[1]], "boxed", box[0], box[1], _line_start(text, box[0]))
    for pattern, name in ((_FINAL, "final_answer"), (_ANSWER, "answer_is")):
        if (f := _last(pattern.finditer(text))) is not None:
            protect = max(_line_start(text, f.start()), _sentence_start(text, f.start()))
            return FinalAnswer(f.group("v"), name, f.start("v"), f.end("v"), protect)
    if (m := _last(_NUMBER_RE.finditer(text))) is None:
        return None
    protect = max(_line_start(text, m.start()), _sentence_start(text, m.start()))
    return FinalAnswer(m.group(), "last_number", m.start(), m.end(), protect)


def same_final_answer(original: str, perturbed: str) -> bool:
    """Whether a checker reads the same final answer, under the same convention, from both texts."""
    a, b = find_final_answer(original), find_final_answer(perturbed)
    if a is None or b is None:
        return a is b
    return (a.convention, a.normalized) == (b.convention, b.normalized) and (
        original[a.protected_start :] == perturbed[b.protected_start :]
    )
