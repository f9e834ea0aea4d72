"""The arithmetic inside a worked solution: its equations and its steps, as spans of the text.

Two notations are read:

    displayed   "16 - 3 - 4 = 9", "$9 \\times 2 = \\$18$", "7 x .5 = 3.5"
    calculator  GSM8K's "<<16-3-4=9>>9": an annotation followed by the displayed result

An equation keeps the spans of its operands, operators and result in both notations (when present), so an
edit can change a number consistently wherever the solution states it. A step is a line of the solution,
or a sentence when the solution is a single paragraph.
"""

from __future__ import annotations

import dataclasses
from decimal import Decimal, InvalidOperation

from cuirass import linear
from cuirass.marks.answer import NUMBER

Span = tuple[int, int]

_OPERATOR = r"(?:\\times|\\cdot|\\div|[-+*/×÷−])"
_OPERATOR_OR_X = linear.compile(_OPERATOR + r"|x")  # an "x" counts only between whitespace: see _operators_in
_NUMBER_RE = linear.compile(NUMBER)
# An equation "a op b ... = c". Whitespace is only allowed between an operand and an operator, and an operand
# is followed by nothing that could start another one, so the operands split one way only. (?<![\w.,]) before
# it; after the result, (?!\d) and no further "op operand" (the result is not the start of a longer
# expression): `after` below spells out what may follow instead, one branch per case.
_OPERAND = r"\(?(?:\\?\$)?" + NUMBER + r"%?\)?"
_JOIN = r"(?:[ \t]*" + _OPERATOR + r"[ \t]*|[ \t]+x[ \t]+)"
_NOT_OP = r"[^ \t\\\-+*/×÷−x"  # a character that starts no operator (class opened; callers close it)
_DISPLAYED = linear.compile(
    r"(?P<lhs>" + _OPERAND + r"(?:" + _JOIN + _OPERAND + r")+)[ \t]*=[ \t]*(?:\\?\$)?(?P<mask>\x00*)"
    r"(?:\\?\$)?[ \t]*(?P<res>" + NUMBER + r")",
    before=r"[^\w.,]",
    after="|".join(
        (
            r"$",
            _NOT_OP + r"\d]",  # right after the result: neither a digit nor an operator
            r"[ \t]+(?:$|" + _NOT_OP + r"])",  # after spaces: no operator
            r"[ \t]*(?:" + _OPERATOR + r"|x[ \t])[ \t]*(?:$|[^ \t\d.(\\$])",  # an operator, but no operand after it
            r"[ \t]*\\(?:$|[^tcd]|t(?:$|[^i]|i(?:$|[^m]|m(?:$|[^e]|e(?:$|[^s]))))|c(?:$|[^d]|d(?:$|[^o]|o(?:$|[^t])))"
            r"|d(?:$|[^i]|i(?:$|[^v])))",  # a backslash that starts no \times, \cdot, \div
            r"[ \t]*x(?:$|[^ \t])",  # an "x" that is a letter, not a times sign
        )
    ),
)
_ANNOTATION = linear.compile(r"<<(?P<lhs>[^<>=]*)=(?P<res>[^<>]*)>>(?P<shown>" + NUMBER + r")?")
_ANNOTATED = linear.compile(r"<<[^<>]*>>")
# A sentence: runs of [.!?] inside it are followed by a character that is neither a mark nor a space (which
# is part of the sentence); a final run ends it. Each character has one way to match, so no backtracking.
SENTENCE = linear.compile(r"(?:[^.!?\n]|[.!?]+[^\s.!?])+[.!?]*")


@dataclasses.dataclass(slots=True)
class Equation:
    """One computation. Lists are parallel between notations only when `aligned`."""

    operands: list[Span]  # displayed operands (empty when only the annotation states the computation)
    operators: list[Span]
    result: Span | None  # the displayed result
    ann_operands: list[Span] = dataclasses.field(default_factory=list)
    ann_operators: list[Span] = dataclasses.field(default_factory=list)
    ann_result: Span | None = None

    @property
    def start(self) -> int:
        spans = [*self.operands, *self.ann_operands, *([self.result] if self.result else [])]
        return min(s for s, _ in spans)

    @property
    def end(self) -> int:
        spans = [*self.operands, *self.ann_operands, *([self.result] if self.result else [])]
        return max(e for _, e in spans)

    def aligned(self, text: str) -> bool:
        """Whether displayed and annotated operands state the same numbers in the same order."""
        if not self.ann_operands or len(self.ann_operands) != len(self.operands):
            return False
        return all(
            to_decimal(text[a:b]) == to_decimal(text[c:d]) for (a, b), (c, d) in zip(self.operands, self.ann_operands)
        )


def to_decimal(written: str) -> Decimal | None:
    try:
        return Decimal(written.replace(",", "").strip())
    except InvalidOperation:
        return None


def _mask_annotations(text: str) -> str:
    """The text with every <<...>> replaced by NULs of the same length, so offsets stay valid."""
    return _ANNOTATED.sub(lambda m: "\x00" * (m.end() - m.start()), text)


def _numbers_in(text: str, start: int, end: int) -> list[Span]:
    return _NUMBER_RE.spans(text, start, end)  # (no context in NUMBER: the same as in text[start:end])


def _operators_in(text: str, start: int, end: int) -> list[Span]:
    """Operator spans in text[start:end]; "x" only with whitespace on both sides inside that range."""
    return [
        (a, b)
        for a, b in _OPERATOR_OR_X.spans(text, start, end)
        if text[a] != "x" or (start < a < end - 1 and text[a - 1].isspace() and text[a + 1].isspace())
    ]


def find_equations(text: str, limit: int | None = None) -> list[Equation]:
    """Every equation that ends before `limit` (default: the whole text), in order of position."""
    return list(_equations(text, len(text) if limit is None else limit))


@linear.per_text
def _equations(text: str, limit: int) -> tuple[Equation, ...]:
    masked = _mask_annotations(text)
    annotations = {m.start(): m for m in _ANNOTATION.finditer(text)}
    used: set[int] = set()
    found: list[Equation] = []
    for m in _DISPLAYED.finditer(masked):
        if m.end() > limit:
            break
        eq = Equation(_numbers_in(text, *m.span("lhs")), _operators_in(text, *m.span("lhs")), m.span("res"))
        if m.group("mask"):
            ann = annotations.get(m.start("mask"))
            if ann is not None:
                used.add(ann.start())
                _attach(eq, text, ann)
        found.append(eq)
    for start, ann in annotations.items():
        if start in used or ann.end() > limit or ann.group("shown") is None:
            continue
        eq = Equation([], [], ann.span("shown"))
        _attach(eq, text, ann)
        found.append(eq)
    found = [e for e in found if e.operands or e.ann_operands]
    return tuple(sorted(found, key=lambda e: e.start))


def _attach(eq: Equation, text: str, ann: linear.Match) -> None:
    eq.ann_operands = _numbers_in(text, *ann.span("lhs"))
    eq.ann_operators = _operators_in(text, *ann.span("lhs"))
    res = _numbers_in(text, *ann.span("res"))
    eq.ann_result = res[0] if len(res) == 1 else None


def find_steps(text: str, limit: int) -> list[Span]:
    """The solution's steps before `limit`: its non-empty lines, or its sentences if it has one line."""
    lines: list[Span] = []
    pos = 0
    for line in text[:limit].split("\n"):
        if line.strip():
            lead = len(line) - len(line.lstrip())
            lines.append((pos + lead, pos + len(line.rstrip())))
        pos += len(line) + 1
    if len(lines) >= 2:
        return lines
    steps: list[Span] = []
    for a, b in lines:
        for m in SENTENCE.finditer(text, a, b):
            seg = m.group()
            if seg.strip():
                lead = len(seg) - len(seg.lstrip())
                steps.append((m.start() + lead, m.start() + len(seg.rstrip())))
    return steps


def operator_kind(symbol: str) -> str:
    """'+', '-', '*' or '/' for any notation of an operator."""
    return {
        "+": "+",
        "-": "-",
        "−": "-",
        "*": "*",
        "×": "*",
        "x": "*",
        "\\times": "*",
        "\\cdot": "*",
        "/": "/",
        "÷": "/",
        "\\div": "/",
    }[symbol]
