"""The procedural problem generator: deterministic, arithmetically right, split by content."""

from __future__ import annotations

import re

from cuirass.lab.reference.problems import TEMPLATES, problem, problems, split_of
from cuirass.respond.perturb.answer import find_final_answer

_EQUATION = re.compile(r"(\d+) (×|\+|-|÷|times|plus|minus|divided by) (\d+) (?:=|is) (\d+)")
_OPS = {"×": lambda a, b: a * b, "times": lambda a, b: a * b, "+": lambda a, b: a + b, "plus": lambda a, b: a + b,
        "-": lambda a, b: a - b, "minus": lambda a, b: a - b, "÷": lambda a, b: a // b,
        "divided by": lambda a, b: a // b}


def test_deterministic_and_prefix_stable() -> None:
    assert list(problems(50, seed=3)) == list(problems(50, seed=3))
    assert list(problems(20, seed=3)) == list(problems(50, seed=3))[:20]
    assert list(problems(20, seed=3)) != list(problems(20, seed=4))


def test_every_equation_and_final_answer_is_right() -> None:
    batch = list(problems(600, seed=0)) + list(problems(300, seed=0, split="test"))
    assert {p.template for p in batch} == set(TEMPLATES)
    for p in batch:
        equations = _EQUATION.findall(p.solution)
        assert equations, p.solution
        for a, op, b, c in equations:
            assert _OPS[op](int(a), int(b)) == int(c), (p.solution, a, op, b, c)
            if op in ("÷", "divided by") and "remainder" not in p.solution and "left over" not in p.solution:
                assert int(a) % int(b) == 0
        assert p.answer >= 0
        assert p.solution.endswith(f"The answer is {p.answer}.")
        found = find_final_answer(p.solution)
        assert found is not None and found.convention == "answer_is" and found.normalized == str(p.answer)


def test_solutions_are_phrased_in_many_ways() -> None:
    batch = [p for p in problems(400, seed=1) if p.template == "travel"]
    first_lines = {p.solution.split("\n")[0].split(" 0")[0][:18] for p in batch}
    assert len(first_lines) >= 5


def test_held_out_split_is_disjoint_by_numbers() -> None:
    train = {(p.template, p.numbers) for p in problems(3000, seed=0)}
    test = list(problems(300, seed=0, split="test"))
    assert all(p.split == "test" for p in test)
    assert not train & {(p.template, p.numbers) for p in test}
    share = sum(split_of(p.template, p.numbers) == "test" for p in (problem(i, "train") for i in range(50)))
    assert share == 0
