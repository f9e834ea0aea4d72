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
import re
from decimal import Decimal, InvalidOperation

from cuirass.respond.perturb.answer import NUMBER

Span = tuple[int, int]

_OPERATOR = r"(?:\\times|\\cdot|\\div|[-+*/×÷−])"
_OPERATOR_RE = re.compile(_OPERATOR + r"|(?<=\s)x(?=\s)")
_NUMBER_RE = re.compile(NUMBER)
# Whitespace is only allowed between an operand and an operator, and operands are atomic, so matching
# stays linear on long runs like "5-5-4-2" (no backtracking over how to split the spaces).
_OPERAND = r"(?>\(?(?:\\?\$)?" + NUMBER + r"%?\)?)"
_JOIN = r"(?>[ \t]*" + _OPERATOR + r"[ \t]*|[ \t]+x[ \t]+)"
_DISPLAYED = re.compile(
    r"(?<![\w.,])(?P<lhs>" + _OPERAND + r"(?:" + _JOIN + _OPERAND + r")+)[ \t]*=[ \t]*(?:\\?\$)?(?P<mask>\x00*)"
    r"(?:\\?\$)?[ \t]*(?P<res>" + NUMBER + r")(?!\d)(?![ \t]*(?:" + _OPERATOR + r"|x[ \t])[ \t]*[\d.(\\$])"
)
_ANNOTATION = re.compile(r"<<(?P<lhs>[^<>=]*)=(?P<res>[^<>]*)>>(?P<shown>" + NUMBER + r")?")
_SENTENCE = re.compile(r"(?:[^.!?\n]|[.!?]+(?=[^\s.!?]))+[.!?]*")


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
        return all(to_decimal(text[a:b]) == to_decimal(text[c:d])
                   for (a, b), (c, d) in zip(self.operands, self.ann_operands))


def to_decimal(written: str) -> Decimal | None:
    try:
        return Decimal(written.replace(",", "").strip())
    except InvalidOperation:
        return None


def _mask_annotations(text: str) -> str:
    """The text with every <<...>> replaced by NULs of the same length, so offsets stay valid."""
    return re.sub(r"<<[^<>]*>>", lambda m: "\x00" * len(m.group()), text)


def _numbers_in(text: str, start: int, end: int) -> list[Span]:
    return [(start + m.start(), start + m.end()) for m in _NUMBER_RE.finditer(text[start:end])]


def _operators_in(text: str, start: int, end: int) -> list[Span]:
    return [(start + m.start(), start + m.end()) for m in _OPERATOR_RE.finditer(text[start:end])]


def find_equations(text: str, limit: int | None = None) -> list[Equation]:
    """Every equation that ends before `limit` (default: the whole text), in order of position."""
    limit = len(text) if limit is None else limit
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
    return sorted(found, key=lambda e: e.start)


def _attach(eq: Equation, text: str, ann: re.Match[str]) -> None:
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
        for m in _SENTENCE.finditer(text, a, b):
            seg = m.group()
            if seg.strip():
                lead = len(seg) - len(seg.lstrip())
                steps.append((m.start() + lead, m.start() + len(seg.rstrip())))
    return steps


def operator_kind(symbol: str) -> str:
    """'+', '-', '*' or '/' for any notation of an operator."""
    return {"+": "+", "-": "-", "−": "-", "*": "*", "×": "*", "x": "*", "\\times": "*", "\\cdot": "*",
            "/": "/", "÷": "/", "\\div": "/"}[symbol]
