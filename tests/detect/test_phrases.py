"""Phrase lexicons: reasoning elicitation, rubric grading, answer formats, in several languages."""

from __future__ import annotations

import pytest

from cuirass.detect.phrases import ANSWER, REASONING, RUBRIC, TOPICS, Lexicon, topic_of, words


def found(lexicon: Lexicon, text: str) -> str | None:
    lowered = text.lower()
    return lexicon.search(lowered, set(words(lowered)))


@pytest.mark.parametrize(
    "text",
    [
        "Think step by step and show your work.",
        "Imagine the internal reasoning behind the answer and write it out.",
        "Before answering, explain your thought process in detail.",
        "请一步一步地思考，并写出推理过程。",
        "Piensa paso a paso y muestra tu razonamiento.",
        "Réfléchis étape par étape et explique ton raisonnement.",
        "Denke Schritt für Schritt nach und erkläre deinen Lösungsweg.",
        "Реши задачу шаг за шагом и объясни свои рассуждения.",
        "ステップバイステップで考えてください。",
        "Let's work this out one step at a time.",
    ],
)
def test_reasoning_requests_in_many_languages(text: str) -> None:
    assert found(REASONING, text)


@pytest.mark.parametrize(
    "text",
    [
        "Write a poem about the sea.",
        "What is the capital of France?",
        "Fix this bug: TypeError: 'NoneType' object is not subscriptable",
        "I took a step back and thought about my career.",
    ],
)
def test_ordinary_prompts_do_not_match(text: str) -> None:
    assert found(REASONING, text) is None
    assert found(RUBRIC, text) is None


@pytest.mark.parametrize(
    "text",
    [
        "Grade the following answer on a scale of 1 to 10 using the rubric.",
        "Which response is better, A or B?",
        "请根据评分标准给出分数。",
        "Evalúa la respuesta con una rúbrica.",
        "Оцени ответ по шкале от 1 до 5.",
    ],
)
def test_rubric_requests(text: str) -> None:
    assert found(RUBRIC, text)


def test_answer_format_demands() -> None:
    assert found(ANSWER, "Solve it and put the final answer in \\boxed{}.")
    assert found(ANSWER, "Give the result on its own line.")
    assert found(ANSWER, "请给出最终答案。")
    assert found(ANSWER, "Summarise this article.") is None


def test_every_pattern_has_a_literal_stem() -> None:
    with pytest.raises(ValueError):
        Lexicon("bad", [r"(?:a|b) step"])


def test_topics() -> None:
    assert TOPICS[topic_of(words("how many apples does each of the 0 kids get in total"))] == "math"
    assert TOPICS[topic_of(words("write a python function that returns the json error code"))] == "code"
    assert TOPICS[topic_of(words("hello there"))] == "other"


def test_words_splits_cjk_characters() -> None:
    assert words("请一步 step-by-step") == ["请", "一", "步", "step", "by", "step"]
