"""The procedural problem generator: deterministic, arithmetically right, split by content."""

from __future__ import annotations

import re

from cuirass.marks.answer import find_final_answer
from cuirass.models.problems import (
    CASUAL,
    ELICIT,
    SPLIT_CLOSE,
    SPLIT_OPEN,
    SYMBOL_VERBS,
    TEMPLATES,
    WORD_VERBS,
    framed,
    problem,
    problems,
    split_of,
)

# every way a solution says "equals" between two numbers or expressions, written back as " = "
_RELATION = re.compile(
    r"(?<=\d) (?:{}) (?=\d)".format(
        "|".join(
            sorted({re.escape(v) for v in SYMBOL_VERBS + WORD_VERBS + SPLIT_OPEN + SPLIT_CLOSE}, key=len, reverse=True)
        )
    )
)
_WORDS = re.compile(r"(\d+) (times|plus|minus|divided by) (\d+) = (\d+)")
_CHAIN = re.compile(r"\d+(?: [×+÷-] \d+)+(?: = \d+(?: [×+÷-] \d+)*)+")  # 47 + 38 = 47 + 30 + 8 = 77 + 8 = 85
_OPS = {
    "times": lambda a, b: a * b,
    "plus": lambda a, b: a + b,
    "minus": lambda a, b: a - b,
    "divided by": lambda a, b: a // b,
}
_OPS.update({"×": _OPS["times"], "+": _OPS["plus"], "-": _OPS["minus"], "÷": _OPS["divided by"]})


def _value(expr: str) -> int:
    """An expression of integers and × + - ÷ with the usual precedence (÷ is exact in these problems)."""
    return eval(expr.replace("×", "*").replace("÷", "//"), {"__builtins__": {}})  # digits and operators only


def test_deterministic_and_prefix_stable() -> None:
    assert list(problems(50, seed=3)) == list(problems(50, seed=3))
    assert list(problems(20, seed=3)) == list(problems(50, seed=3))[:20]
    assert list(problems(20, seed=3)) != list(problems(20, seed=4))


def test_every_equation_and_final_answer_is_right() -> None:
    batch = list(problems(600, seed=0)) + list(problems(300, seed=0, split="test"))
    assert {p.template for p in batch} == set(TEMPLATES)
    for p in batch:
        text = _normal(p.solution)
        words, chains = _WORDS.findall(text), _CHAIN.findall(text)
        assert words or chains, p.solution
        for a, op, b, c in words:
            assert _OPS[op](int(a), int(b)) == int(c), (p.solution, a, op, b, c)
        for chain in chains:
            sides = chain.split(" = ")
            assert len({_value(side) for side in sides}) == 1, (p.solution, chain)
            if "÷" in sides[0] and "remainder" not in p.solution and "left over" not in p.solution:
                a, b = (int(x) for x in sides[0].split(" ÷ "))
                assert a % b == 0
        assert p.answer >= 0
        assert p.solution.startswith("<think>\n") and p.solution.endswith(f"\n</think>\n\nThe answer is {p.answer}.")
        assert p.solution.count("<think>") == p.solution.count("</think>") == 1
        found = find_final_answer(p.solution)
        assert found is not None and found.convention == "answer_is" and found.normalized == str(p.answer)


def _normal(text: str) -> str:
    return _RELATION.sub(" = ", text)


def test_multi_digit_steps_are_split_into_one_digit_facts() -> None:
    text = _normal("\n".join(p.solution for p in problems(300, seed=2)))
    assert "47 + 38 = 47 + 30 + 8 = 77 + 8 = 85" in problem_text_of(47, "+", 38)
    assert "100 - 73 = 100 - 70 - 3 = 30 - 3 = 27" in problem_text_of(100, "-", 73)
    assert "36 × 8 = 30 × 8 + 6 × 8 = 240 + 48 = 288" in problem_text_of(36, "×", 8)
    for chain in _CHAIN.findall(text):
        first = chain.split(" = ")[0].split(" ")
        if len(first) == 3 and first[1] in "+-" and chain.count(" = ") > 1:
            b = int(first[2])
            assert b >= 10 and b % 10, chain  # split only when the second operand has tens and ones


def problem_text_of(a: int, op: str, b: int) -> str:
    import random

    from cuirass.models.problems import _calc

    c = {"+": a + b, "-": a - b, "×": a * b}[op]
    return _normal(_calc(random.Random(0), a, op, b, c))


def test_split_chains_are_worded_in_many_ways() -> None:
    import random

    from cuirass.models.problems import _calc

    chains = {_calc(random.Random(i), 47, "+", 38, 85) for i in range(200)}
    assert len(chains) >= 20  # where the chain opens and how it closes are free choices
    assert {_normal(c) for c in chains} == {"47 + 38 = 47 + 30 + 8 = 77 + 8 = 85"}  # the arithmetic is not


def test_solutions_are_phrased_in_many_ways() -> None:
    batch = [p for p in problems(400, seed=1) if p.template == "travel"]
    first_lines = {p.solution.split("\n")[1].split(" 0")[0][:18] for p in batch}  # line 0 opens the <think> block
    assert len(first_lines) >= 5


def test_held_out_split_is_disjoint_by_numbers() -> None:
    train = {(p.template, p.numbers) for p in problems(3000, seed=0)}
    test = list(problems(300, seed=0, split="test"))
    assert all(p.split == "test" for p in test)
    assert not train & {(p.template, p.numbers) for p in test}
    share = sum(split_of(p.template, p.numbers) == "test" for p in (problem(i, "train") for i in range(50)))
    assert share == 0


def test_training_prompts_frame_a_share_of_the_questions() -> None:
    import random

    rng = random.Random(0)
    qs = [p.question for p in problems(2000, seed=5)]
    asked = [framed(q, rng) for q in qs]
    frames = {f.format(q=q): kind for q in qs for kind, fs in (("casual", CASUAL), ("elicit", ELICIT)) for f in fs}
    kinds = [frames.get(a, "bare" if a == q else "?") for a, q in zip(asked, qs)]
    assert "?" not in kinds
    assert 0.33 < kinds.count("casual") / len(kinds) + kinds.count("elicit") / len(kinds) < 0.47
    assert abs(kinds.count("casual") - kinds.count("elicit")) < 0.05 * len(kinds)
