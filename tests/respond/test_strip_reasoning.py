"""`strip_reasoning`: <think> blocks and reasoning fields never reach a flagged client."""

from __future__ import annotations

import copy

import pytest

from cuirass.respond.base import DEFENSES, DefenseContext
from cuirass.respond.defenses.strip_reasoning import StripReasoning, strip_reasoning_fields, strip_think

CTX = DefenseContext(account="a", cohort="c000", prompt="p", endpoint="/v1/chat/completions", model="m", key=b"k" * 32)


def test_registered_under_its_name() -> None:
    assert DEFENSES["strip_reasoning"] is StripReasoning


@pytest.mark.parametrize(
    "text, expected",
    [
        ("<think>\nLet me add 2 and 2.\n</think>\n\nThe answer is 4.", "The answer is 4."),
        ("<think>cut off by max_tokens, never closed", ""),
        ("  \n<think>open at the start\nstill thinking", ""),
        ("Hello <think>aside</think> world", "Hello world"),
        ("Line one.\n<think>\n  \n x \n</think>\nLine two.", "Line one.\n\nLine two."),
        ("<think>a <think>nested</think> b</think>\n\n  Done", "Done"),
        ("the template opened it, so this is reasoning</think>\n\nAnswer", "Answer"),
        ("<THINK>upper</THINK>Shout", "Shout"),
        ("<thinking>also a tag</thinking>Yes", "Yes"),
        ("<think>one</think>A<think>two</think>B", "A B"),
        ("No reasoning at all.", "No reasoning at all."),
    ],
)
def test_think_blocks_are_removed(text: str, expected: str) -> None:
    assert StripReasoning().transform(text, CTX) == expected


def test_summary_marker_and_first_sentence() -> None:
    text = "<think>First I add the numbers. Then I check.</think>\nThe answer is 4."
    assert StripReasoning(summary=True).transform(text, CTX) == "Reasoning omitted.\n\nThe answer is 4."
    first = StripReasoning(summary=True, summary_style="first_sentence").transform(text, CTX)
    assert first == "First I add the numbers.\n\nThe answer is 4."
    assert StripReasoning(summary=True, marker="[hidden]").transform(text, CTX).startswith("[hidden]")
    assert StripReasoning(summary=True).transform("plain", CTX) == "plain"  # no reasoning, no marker
    assert strip_think(text, summary="S") == "S\n\nThe answer is 4."


def test_fields_are_stripped_from_responses_and_chunks() -> None:
    resp = {
        "id": "x",
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {
                    "role": "assistant",
                    "content": "<think>hmm</think>Hi",
                    "reasoning_content": "Let me think. Fine.",
                },
            }
        ],
    }
    before = copy.deepcopy(resp)
    out = StripReasoning().strip_response(resp)
    assert out["choices"][0]["message"] == {"role": "assistant", "content": "Hi"}
    assert resp == before  # the input is left alone
    summarised = StripReasoning(summary=True, summary_style="first_sentence").strip_response(resp)
    assert summarised["choices"][0]["message"]["reasoning_content"] == "Let me think."
    assert summarised["choices"][0]["message"]["content"] == "hmm\n\nHi"

    chunk = {"choices": [{"index": 0, "delta": {"reasoning": "step", "content": "A"}}]}
    assert strip_reasoning_fields(chunk) == {"choices": [{"index": 0, "delta": {"content": "A"}}]}
    assert StripReasoning().strip_chunk({"choices": [{"delta": {"reasoning_content": "x"}}]}) == {
        "choices": [{"delta": {}}]
    }
    legacy = {"choices": [{"index": 0, "text": "<think>x</think>Yes"}]}
    assert StripReasoning().strip_response(legacy)["choices"][0]["text"] == "Yes"


def test_bad_summary_style_is_rejected() -> None:
    with pytest.raises(ValueError):
        StripReasoning(summary=True, summary_style="poem")
