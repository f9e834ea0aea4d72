"""Answer-preserving damage to worked arithmetic solutions (GSM8K style or free-form model answers).

The final answer, and everything from its line or sentence on, stays byte for byte: distillers filter
harvested solutions with answer checkers, and a solution that keeps its correct answer survives the filter
while teaching a wrong path. This follows the answer-preserving perturbation idea of antidistillation work
(Savani et al., "Antidistillation Sampling", 2025, poison the reasoning trace while keeping the answer
useful) and the finding that students learn from flawed traces that still end correctly (Li et al., "LLMs
Can Easily Learn to Reason from Demonstrations: Structure, not content, is what matters!", 2025), which
says damage to step structure (dropped, reordered steps) hurts a student more than damage to local
content, hence both kinds are offered. Variants:

    wrong_intermediate        a step states a wrong result; later steps go on using the right one
    wrong_operand             an operand changes, the stated result does not
    swap_operator             an operator changes ("9 * 2 = 18" -> "9 + 2 = 18")
    swap_word                 an operation word flips ("subtract" -> "add", "more" -> "fewer")
    drop_step                 a step disappears; its result is used without derivation
    reorder_steps             two adjacent steps trade places, often a result before its derivation
    misleading_justification  a step gets a reason that names the wrong operation
"""

from __future__ import annotations

import bisect
import itertools
import random
from collections.abc import Callable
from decimal import Decimal

from cuirass import linear
from cuirass.marks.answer import find_final_answer, same_final_answer
from cuirass.respond.perturb.base import Perturber
from cuirass.respond.perturb.equations import (
    Equation,
    Span,
    find_equations,
    find_steps,
    operator_kind,
    to_decimal,
)

Edit = tuple[int, int, str]

# The operation a wrong-operator edit substitutes, by kind, and how each notation writes each kind.
_SWAP = {"+": "*", "-": "+", "*": "+", "/": "*"}
_NOTATION = {
    "latex": {"+": "+", "-": "-", "*": "\\times", "/": "\\div"},
    "unicode": {"+": "+", "-": "−", "*": "×", "/": "÷"},
    "x": {"+": "+", "-": "-", "*": "x", "/": "/"},
    "ascii": {"+": "+", "-": "-", "*": "*", "/": "/"},
}

# Operation words and their opposites (both directions), matched as whole words, case kept.
_WORD_PAIRS = [
    ("add", "subtract"),
    ("adds", "subtracts"),
    ("added", "subtracted"),
    ("adding", "subtracting"),
    ("addition", "subtraction"),
    ("multiply", "divide"),
    ("multiplies", "divides"),
    ("multiplied", "divided"),
    ("multiplying", "dividing"),
    ("multiplication", "division"),
    ("sum", "difference"),
    ("product", "quotient"),
    ("more", "fewer"),
    ("increase", "decrease"),
    ("increased", "decreased"),
    ("increases", "decreases"),
    ("gains", "loses"),
    ("gained", "lost"),
    ("earns", "spends"),
    ("earned", "spent"),
    ("twice as", "half as"),
    ("doubled", "halved"),
    ("remaining", "total"),
    ("left", "used"),
]
_WORDS = {**{b: a for a, b in _WORD_PAIRS}, **dict(_WORD_PAIRS)}
_WORD_RE = linear.compile(
    "(?:" + "|".join(sorted(map(linear.escape, _WORDS), key=len, reverse=True)) + ")",
    linear.IGNORECASE,
    before=r"[^\w]",
    after=r"[^\w]|$",
)  # whole words: \b(...)\b
_BECAUSE = linear.compile("because", linear.IGNORECASE, before=r"[^\w]", after=r"[^\w]|$")
_NUMBER_LIKE = linear.compile(r"\d[\d,]*(?:\.\d+)?|\.\d+")

# Reasons that name an operation other than the one the step performs (our wording); a connector
# ("because", "since") is put in front.
_WRONG_REASON = {
    "+": [
        "the second amount is taken out of the first",
        "the amounts repeat for every item, so they multiply",
        "the total is shared out between them",
    ],
    "-": [
        "both amounts belong to the same total, so they are combined",
        "the larger amount is split into equal parts",
        "the amount repeats once for each item",
    ],
    "*": [
        "the second amount is removed from the first",
        "the two amounts are simply combined",
        "the total is shared equally between them",
    ],
    "/": [
        "the amount is repeated for every item",
        "the two parts are added to make the whole",
        "the smaller amount is subtracted each time",
    ],
}
_GENERIC_REASON = [
    "the earlier amounts no longer matter at this point",
    "this amount was already doubled in the step before",
    "only the first quantity changes here",
]


def nudge(written: str, rng: random.Random) -> str | None:
    """A plausible wrong value written like `written` (commas, decimals, leading dot), or None."""
    value = to_decimal(written)
    if value is None:
        return None
    decimals = len(written.split(".")[1]) if "." in written else 0
    unit = Decimal(1).scaleb(-decimals)
    options = [value + d * unit for d in (1, -1, 2, -2, 10, -10)]
    digits = written.replace(",", "").replace(".", "")
    if decimals == 0 and len(digits) >= 2 and digits[-1] != digits[-2]:
        options.append(Decimal(digits[:-2] + digits[-1] + digits[-2]))  # a transposition slip
    rng.shuffle(options)
    for new in options:
        if new != value and (new > 0 or value <= 0):
            return _write_like(new, written, decimals)
    return None


def _write_like(value: Decimal, like: str, decimals: int) -> str:
    text = f"{value:,.{decimals}f}" if "," in like else f"{value:.{decimals}f}"
    if like.startswith(".") and text.startswith("0."):
        text = text[1:]
    return text


def _notation(symbol: str) -> str:
    if symbol.startswith("\\"):
        return "latex"
    if symbol in "×÷−":
        return "unicode"
    return "x" if symbol == "x" else "ascii"


def _apply(text: str, edits: list[Edit]) -> str:
    for start, end, new in sorted(edits, reverse=True):
        text = text[:start] + new + text[end:]
    return text


class MathPerturber(Perturber):
    content_type = "math"
    variants = (
        "wrong_intermediate",
        "wrong_operand",
        "swap_operator",
        "swap_word",
        "drop_step",
        "reorder_steps",
        "misleading_justification",
    )

    def apply(self, text: str, variant: str, rng: random.Random) -> str | None:
        final = find_final_answer(text)
        if final is None:
            return None
        edits = getattr(self, f"_{variant}")(text, final.protected_start, rng)
        return _apply(text, edits) if edits else None

    def preserves(self, original: str, perturbed: str) -> bool:
        return same_final_answer(original, perturbed)

    # -- local content --------------------------------------------------------------------------------------

    def _wrong_intermediate(self, text: str, limit: int, rng: random.Random) -> list[Edit]:
        eqs = [e for e in find_equations(text, limit) if e.result]
        candidates = eqs[:-1]  # the last computation usually restates the final answer: leave it
        if not candidates:
            return []
        reused = _reused_later(text, candidates, limit)
        eq = rng.choice(reused or candidates)
        assert eq.result is not None
        new = nudge(text[slice(*eq.result)], rng)
        if new is None:
            return []
        edits: list[Edit] = [(*eq.result, new)]
        if eq.ann_result:
            edits.append((*eq.ann_result, new.replace(",", "")))
        return edits

    def _wrong_operand(self, text: str, limit: int, rng: random.Random) -> list[Edit]:
        eqs = [e for e in find_equations(text, limit) if e.operands]
        if not eqs:
            return []
        eq = rng.choice(eqs)
        i = rng.randrange(len(eq.operands))
        new = nudge(text[slice(*eq.operands[i])], rng)
        if new is None:
            return []
        edits: list[Edit] = [(*eq.operands[i], new)]
        if eq.aligned(text):
            edits.append((*eq.ann_operands[i], new.replace(",", "")))
        return edits

    def _swap_operator(self, text: str, limit: int, rng: random.Random) -> list[Edit]:
        eqs = [e for e in find_equations(text, limit) if e.operators]
        if not eqs:
            return []
        eq = rng.choice(eqs)
        i = rng.randrange(len(eq.operators))
        symbol = text[slice(*eq.operators[i])]
        kind = _SWAP[operator_kind(symbol)]
        edits: list[Edit] = [(*eq.operators[i], _NOTATION[_notation(symbol)][kind])]
        if eq.aligned(text) and len(eq.ann_operators) == len(eq.operators):
            edits.append((*eq.ann_operators[i], kind))
        return edits

    def _swap_word(self, text: str, limit: int, rng: random.Random) -> list[Edit]:
        found = [m for m in _WORD_RE.finditer(text, 0, limit) if "\x00" not in m.group()]
        inside = _annotation_test(text)
        found = [m for m in found if not inside(m.start())]
        if not found:
            return []
        m = rng.choice(found)
        word = m.group()
        new = _WORDS[word.lower()]
        if word[0].isupper():
            new = new[0].upper() + new[1:]
        return [(m.start(), m.end(), new)]

    # -- structure ------------------------------------------------------------------------------------------

    def _drop_step(self, text: str, limit: int, rng: random.Random) -> list[Edit]:
        steps = find_steps(text, limit)
        if len(steps) < 2:
            return []
        starts = [e.start for e in find_equations(text, limit)]  # sorted
        with_math = [s for s in steps if (i := bisect.bisect_left(starts, s[0])) < len(starts) and starts[i] < s[1]]
        start, end = rng.choice(with_math or steps)
        line_start = text.rfind("\n", 0, start) + 1
        if not text[line_start:start].strip():
            start = line_start
        while end < limit and text[end] in " \t":
            end += 1
        if end < limit and text[end] == "\n":
            end += 1
        return [(start, end, "")]

    def _reorder_steps(self, text: str, limit: int, rng: random.Random) -> list[Edit]:
        steps = find_steps(text, limit)
        pairs = [(a, b) for a, b in itertools.pairwise(steps) if text[slice(*a)] != text[slice(*b)]]
        if not pairs:
            return []
        eqs = find_equations(text, limit)
        starts = [e.start for e in eqs]
        dependent = [(a, b) for a, b in pairs if _feeds(text, eqs, starts, a, b)]
        a, b = rng.choice(dependent or pairs)
        return [(*a, text[slice(*b)]), (*b, text[slice(*a)])]

    def _misleading_justification(self, text: str, limit: int, rng: random.Random) -> list[Edit]:
        steps = find_steps(text, limit)
        if not steps:
            return []
        eqs = find_equations(text, limit)
        starts = [e.start for e in eqs]
        with_op = [(s, e) for s in steps for e in _starting_in(eqs, starts, s) if e.operators or e.ann_operators]
        if with_op:
            (start, end), eq = rng.choice(with_op)
            op = eq.operators[0] if eq.operators else eq.ann_operators[0]
            reason = rng.choice(_WRONG_REASON[operator_kind(text[slice(*op)])])
        else:
            start, end = rng.choice(steps)
            reason = rng.choice(_GENERIC_REASON)
        connector = "since" if _BECAUSE.search(text[start:end]) else rng.choice(["because", "since"])
        reason = f"{connector} {reason}"
        last = text[end - 1]
        if last in ".!?":
            return [(end - 1, end - 1, f", {reason}")]
        if last.isalnum() or last == "%":
            return [(end, end, f", {reason}")]
        return [(end, end, f" ({reason})")]


def _annotation_test(text: str) -> Callable[[int], bool]:
    """Whether a position is inside an unclosed "<<" (the last "<<" before it has no ">>" after it, before it).

    The positions of every "<<" and ">>" are listed once, so each question is two binary searches."""
    opens, closes = _occurrences(text, "<<"), _occurrences(text, ">>")

    def inside(pos: int) -> bool:
        k = bisect.bisect_right(opens, pos - 2) - 1  # the last "<<" that ends at or before pos
        if k < 0:
            return False
        j = bisect.bisect_left(closes, opens[k])
        return not (j < len(closes) and closes[j] + 2 <= pos)

    return inside


def _occurrences(text: str, needle: str) -> list[int]:
    """Every start of `needle` in `text`, overlapping ones too, in order."""
    out, i = [], text.find(needle)
    while i != -1:
        out.append(i)
        i = text.find(needle, i + 1)
    return out


def _starting_in(eqs: list[Equation], starts: list[int], span: Span) -> list[Equation]:
    """The equations that start inside `span`, in order (`eqs` sorted by start, `starts` their starts)."""
    return eqs[bisect.bisect_left(starts, span[0]) : bisect.bisect_left(starts, span[1])]


def _reused_later(text: str, eqs: list[Equation], limit: int) -> list[Equation]:
    """The equations whose result's value appears again after them, before `limit` (a later step builds on
    it), as numbers are read from the equation's end on.

    The numbers of text[:limit] are read once, not once per equation: reading from an equation's end gives
    the same numbers as that one reading from the first point that is not inside one of them (a number read
    from inside another may run past its end, so the few up to there are read again); from there on, the
    last position of each value says whether the value comes again.
    """
    tokens = [(m.start(), m.end(), to_decimal(m.group())) for m in _NUMBER_LIKE.finditer(text, 0, limit)]
    starts = [a for a, _, _ in tokens]
    last_at = {value: i for i, (_, _, value) in enumerate(tokens)}
    out = []
    for eq in eqs:
        assert eq.result is not None
        value, pos, found = to_decimal(text[slice(*eq.result)]), eq.end, False
        while pos < limit:
            k = bisect.bisect_right(starts, pos) - 1
            if k < 0 or tokens[k][1] <= pos or starts[k] == pos:  # not inside a number: in step with the list
                nxt = k if k >= 0 and starts[k] == pos else k + 1
                found = nxt < len(tokens) and last_at.get(value, -1) >= nxt
                break
            m = _NUMBER_LIKE.search(text, pos, limit)  # inside a number: read on from here
            if m is None:
                break
            if to_decimal(m.group()) == value:
                found = True
                break
            pos = m.end()
        if found:
            out.append(eq)
    return out


def _feeds(text: str, eqs: list[Equation], starts: list[int], first: Span, second: Span) -> bool:
    """Whether `second` uses a result computed in `first` (`eqs`: the text's equations, sorted by start)."""
    values = {to_decimal(text[slice(*e.result)]) for e in _starting_in(eqs, starts, first) if e.result}
    later = _NUMBER_LIKE.findall(text[slice(*second)])
    return bool(values & {to_decimal(v) for v in later})
