"""`perturb`: the final answer survives, the path to it does not, and code still passes its tests."""

from __future__ import annotations

import gzip
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cuirass.marks.answer import find_final_answer
from cuirass.respond.base import DEFENSES, DefenseContext
from cuirass.respond.defenses.perturb import VARIANTS, Perturb
from cuirass.respond.perturb.detect import content_type

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
MATH_VARIANTS = [v for v, t in VARIANTS.items() if t == "math"]
CODE_VARIANTS = [v for v, t in VARIANTS.items() if t == "code"]


@pytest.fixture(scope="module")
def gsm8k() -> list[dict[str, str]]:
    rows = [json.loads(line) for line in (DATA / "gsm8k_test.jsonl").read_text().splitlines()]
    return rows[::4]  # 330 problems spread over the file


@pytest.fixture(scope="module")
def humaneval() -> list[dict[str, Any]]:
    with gzip.open(DATA / "humaneval.jsonl.gz", "rt") as fh:
        rows = [json.loads(line) for line in fh]
    return [rows[i] for i in (0, 12, 31, 57, 88, 120, 151)]


def final(text: str) -> str:
    return text.split("####")[-1].strip()


def visible(text: str) -> str:
    return re.sub(r"<<[^<>]*>>", "", text)


def test_registered_under_its_name() -> None:
    assert DEFENSES["perturb"] is Perturb


def test_gsm8k_final_answer_kept_and_path_changed(gsm8k: list[dict[str, str]]) -> None:
    p = Perturb()
    changed = 0
    for row in gsm8k:
        out = p.perturb(row["answer"], KEY, row["question"])
        assert out.content_type == "math"
        assert final(out.text) == final(row["answer"]), out.text
        assert out.text.splitlines()[-1] == row["answer"].splitlines()[-1]
        changed += visible(out.text) != visible(row["answer"])
    assert changed / len(gsm8k) >= 0.95


@pytest.mark.parametrize("variant", MATH_VARIANTS)
def test_each_math_variant_keeps_the_answer(variant: str, gsm8k: list[dict[str, str]]) -> None:
    p = Perturb(variant=variant)
    applied = 0
    for row in gsm8k[:120]:
        out = p.perturb(row["answer"], KEY, row["question"])
        assert final(out.text) == final(row["answer"])
        applied += out.applied == (variant,)
        assert out.applied in ((), (variant,))
    assert applied / 120 >= 0.5  # every variant fits most GSM8K solutions


def test_wrong_intermediate_is_used_correctly_later() -> None:
    text = "He buys 3 * 4 = 12 apples.\nThen he eats 2, so 12 - 2 = 10 are left.\nThe answer is 10."
    out = Perturb(variant="wrong_intermediate").perturb(text, KEY, "apples").text
    first, second, last = out.splitlines()
    assert not first.endswith("= 12 apples.")  # the stated result is wrong ...
    assert second == "Then he eats 2, so 12 - 2 = 10 are left."  # ... and the next step uses the right one
    assert last == "The answer is 10."


@pytest.mark.parametrize(
    "template, checker",
    [
        ("{body}\nThe answer is {ans}.", r"answer is (\S+)\.$"),
        ("{body}\nSo the final answer is $\\boxed{{{ans}}}$.", r"\\boxed\{([^}]*)\}"),
        ("{body} In total that is {ans}.", r"(\d[\d,]*(?:\.\d+)?)\D*$"),
    ],
)
def test_model_style_answers_are_kept(template: str, checker: str, gsm8k: list[dict[str, str]]) -> None:
    p = Perturb()
    changed = 0
    for row in gsm8k[:100]:
        body = visible(row["answer"].rsplit("####", 1)[0]).strip()
        text = template.format(body=body, ans=final(row["answer"]))
        out = p.perturb(text, KEY, row["question"]).text
        assert re.findall(checker, out)[-1] == re.findall(checker, text)[-1] == final(row["answer"])
        changed += out != text
    assert changed >= 90


def test_same_key_and_prompt_same_perturbation_other_key_differs(gsm8k: list[dict[str, str]]) -> None:
    p = Perturb()
    rows = gsm8k[:60]
    first = [p.perturb(r["answer"], KEY, r["question"]).text for r in rows]
    again = [Perturb().perturb(r["answer"], KEY, r["question"]).text for r in rows]
    other = [p.perturb(r["answer"], OTHER_KEY, r["question"]).text for r in rows]
    assert first == again
    assert sum(a != b for a, b in zip(first, other)) >= 0.6 * len(rows)


def test_transform_uses_the_context_key() -> None:
    ctx = DefenseContext(account="a", cohort="c001", prompt="q", endpoint="/v1/chat/completions", model="m", key=KEY)
    text = "She has 5 + 7 = 12 pens.\nShe gives away 12 / 2 = 6.\n#### 6"
    assert Perturb().transform(text, ctx) == Perturb().perturb(text, KEY, "q").text != text


def run_humaneval(source: str, problem: dict[str, Any]) -> bool:
    program = f"{source}\n\n{problem['test']}\n\ncheck({problem['entry_point']})\n"
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, timeout=30)
    return done.returncode == 0


@pytest.mark.parametrize("variant", CODE_VARIANTS)
def test_code_still_passes_its_tests(variant: str, humaneval: list[dict[str, Any]]) -> None:
    p = Perturb(variant=variant)
    changed = 0
    for problem in humaneval:
        source = problem["prompt"] + problem["canonical_solution"]
        out = p.perturb(source, KEY, problem["prompt"])
        assert out.content_type == "code"
        changed += out.text != source
        assert run_humaneval(out.text, problem), out.text
    assert changed >= len(humaneval) - 2


def test_code_in_a_markdown_answer_is_perturbed_inside_the_fence_only() -> None:
    text = (
        "Here is a solution.\n\n```python\ndef total(xs):\n    acc = 0\n    for x in xs:\n        acc += x\n"
        "    return acc\n```\n\nIt adds the numbers."
    )
    out = Perturb(variant="rename_variables").perturb(text, KEY, "sum").text
    assert out != text
    assert out.startswith("Here is a solution.\n\n```python\n") and out.endswith("```\n\nIt adds the numbers.")
    code = out.split("```python\n")[1].split("```")[0]
    scope: dict[str, Any] = {}
    exec(code, scope)
    assert scope["total"]([1, 2, 3]) == 6


def test_prose_is_changed_lightly() -> None:
    text = (
        "Photosynthesis turns light into chemical energy. Plants absorb light with chlorophyll. "
        "Water is split to release oxygen. The energy is stored in sugars."
    )
    out = Perturb().perturb(text, KEY, "explain photosynthesis")
    assert out.content_type == "prose" and out.text != text
    assert sorted(out.text.split()) != [] and abs(len(out.text) - len(text)) < 40
    assert out.text.startswith("Photosynthesis")


def test_content_type_detection() -> None:
    assert content_type("She has 3 + 4 = 7 apples.\n#### 7") == "math"
    assert content_type("We compute 6 * 7 = 42, so the answer is 42.") == "math"
    assert content_type("```python\nprint(1)\n```") == "code"
    assert content_type("import os\n\ndef f():\n    return os.sep\n") == "code"
    assert content_type("Paris is the capital of France.") == "prose"


def test_final_answer_conventions() -> None:
    assert find_final_answer("x\n#### 1,200").normalized == "1200"  # type: ignore[union-attr]
    assert find_final_answer("so $\\boxed{\\frac{1}{2}}$.").value == "\\frac{1}{2}"  # type: ignore[union-attr]
    assert find_final_answer("The answer is 42. Thanks").value == "42"  # type: ignore[union-attr]
    assert find_final_answer("It costs 3 then 5 dollars").value == "5"  # type: ignore[union-attr]
    assert find_final_answer("no numbers") is None


def test_options_are_validated() -> None:
    with pytest.raises(ValueError):
        Perturb(variant="nonsense")
    with pytest.raises(ValueError):
        Perturb(content_types=["poetry"])
    only_math = Perturb(content_types=["math"])
    text = "Paris is the capital of France. It is large. It is old."
    assert only_math.perturb(text, KEY, "p").text == text


def test_stacked_edits_still_keep_the_answer(gsm8k: list[dict[str, str]]) -> None:
    p = Perturb(edits=3)
    for row in gsm8k[:50]:
        out = p.perturb(row["answer"], KEY, row["question"])
        assert final(out.text) == final(row["answer"])
        assert len(out.applied) >= 2


def test_same_perturbation_in_another_process() -> None:
    """Gateway workers are separate processes: none of the choices may depend on hash seeds."""
    text = "Tom has 4 * 5 = 20 cards.\nHe gives 20 - 8 = 12 away.\nSo 12 + 3 = 15 remain.\n#### 15"
    code = (
        "import sys; from cuirass.respond.defenses.perturb import Perturb; "
        f"sys.stdout.write(Perturb(edits=2).perturb({text!r}, bytes(range(32)), 'cards').text)"
    )
    outs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={**__import__("os").environ, "PYTHONHASHSEED": seed},
        ).stdout
        for seed in ("1", "2")
    }
    assert outs == {Perturb(edits=2).perturb(text, KEY, "cards").text}
