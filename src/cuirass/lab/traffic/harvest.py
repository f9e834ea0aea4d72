"""Harvesting requests built from a task: reasoning elicitation, plain asks and rubric grading.

Each builder returns the chat messages and the reply the model would give (a reference answer
rewritten as visible reasoning), so the event's `response` looks like what a distiller keeps.
"""

from __future__ import annotations

import random
import re
from typing import Any

from cuirass.lab.traffic.record import system, user
from cuirass.lab.traffic.sources import HarvestItem
from cuirass.lab.traffic.templates import Elicitor, plain_ask

RUBRICS = (
    "Grade the response below on a 1-10 scale for correctness, quality of reasoning and clarity. "
    "Assess each criterion in turn with a short justification, then give 'Score: N'.",
    "You are grading a student's solution. Check every step against the problem, say which steps "
    "are right or wrong and why, and end with an overall mark out of 10.",
    "Evaluate this answer using the rubric: (a) final answer correct, (b) each step valid, "
    "(c) explanation complete. Reason about each item explicitly before the verdict.",
    "Act as a strict judge. Compare the candidate answer with what a correct solution requires, "
    "list the errors you find, and rate it from 1 to 10.",
)


def worked_reply(item: HarvestItem) -> str:
    """A reply showing the reasoning: numbered steps for math, explanation plus code for code."""
    if item.source.startswith("gsm8k"):
        steps = [s.strip() for s in item.answer.splitlines() if s.strip()]
        body = "\n".join(f"Step {i}: {s}" for i, s in enumerate(steps, 1))
        return f"Let's reason through this carefully.\n{body}\nFinal answer: {item.final}"
    if item.source == "humaneval":
        return (
            "First, let's restate what the function must do and think about edge cases; then "
            f"implement it step by step.\n```python\n{item.answer}```\nThis handles every case in the docstring."
        )
    return f"Let me think about this step by step.\n{item.answer}"


def cot_request(
    rng: random.Random, item: HarvestItem, elicitor: Elicitor, system_prompt: str | None
) -> tuple[list[dict[str, Any]], str]:
    """A task wrapped in a reasoning instruction, optionally under a campaign system prompt."""
    task = _code_task(item) if item.source == "humaneval" else item.task
    messages = [system(system_prompt)] if system_prompt else []
    messages.append(user(elicitor.wrap(rng, task)))
    return messages, worked_reply(item)


def plain_request(rng: random.Random, item: HarvestItem, system_prompt: str | None) -> tuple[list[dict[str, Any]], str]:
    """The task with no reasoning instruction (the reply still shows the answer)."""
    task = _code_task(item) if item.source == "humaneval" else item.task
    messages = [system(system_prompt)] if system_prompt else []
    messages.append(user(plain_ask(rng, task)))
    return messages, worked_reply(item)


def rubric_request(
    rng: random.Random, item: HarvestItem, rubric: str, system_prompt: str | None
) -> tuple[list[dict[str, Any]], str]:
    """Ask the model to grade a candidate answer (sometimes deliberately wrong) against a rubric."""
    candidate, wrong = _candidate(rng, item)
    body = f"{rubric}\n\n### Problem\n{item.task}\n\n### Candidate answer\n{candidate}\n\n### Your evaluation"
    messages = [system(system_prompt)] if system_prompt else []
    messages.append(user(body))
    verdict = (
        "Step 2 contains an arithmetic error, so the final answer is wrong. Score: 3"
        if wrong
        else "Every step follows from the previous one and the final answer is correct. Score: 9"
    )
    reply = (
        "Criterion 1, correctness: I recompute the solution independently.\n"
        f"{worked_reply(item)}\nCriterion 2, reasoning quality: the candidate's steps are checked one by one.\n"
        f"{verdict}"
    )
    return messages, reply


def _code_task(item: HarvestItem) -> str:
    return f"Complete the following Python function.\n```python\n{item.task}```"


def _candidate(rng: random.Random, item: HarvestItem) -> tuple[str, bool]:
    """The reference solution, or with one number changed (a wrong answer to be graded down)."""
    text = item.answer + (f"\nFinal answer: {item.final}" if item.final else "")
    if rng.random() < 0.5:
        return text, False
    numbers = list(re.finditer(r"\d+", text))
    if not numbers:
        return text, False
    m = rng.choice(numbers)
    return text[: m.start()] + str(int(m.group()) + rng.randint(1, 9)) + text[m.end() :], True
