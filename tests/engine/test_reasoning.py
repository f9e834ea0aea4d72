"""The `think` reasoning parser: the same split whatever the deltas, a block cut off is all reasoning."""

from __future__ import annotations

import itertools

import pytest

from cuirass.engine.reasoning import ThinkParser, split

REPLY = "<think>\nFirst, 4 × 3 = 12.\nThen 12 + 5 = 17.\n</think>\n\nThe answer is 17."


def _fed(text: str, cuts: list[int]) -> tuple[str, str, list[str]]:
    """Feed `text` cut at `cuts`; the joined reasoning and content, and the order the kinds came out."""
    parser, reasoning, content, order = ThinkParser(), "", "", []
    bounds = [0, *cuts, len(text)]
    pieces = [text[a:b] for a, b in itertools.pairwise(bounds)]
    for out in [parser.feed(p) for p in pieces] + [parser.finish()]:
        reasoning, content = reasoning + out[0], content + out[1]
        order += ["r"] * bool(out[0]) + ["c"] * bool(out[1])
    return reasoning, content, order


def test_whole_reply() -> None:
    assert split(REPLY) == ("First, 4 × 3 = 12.\nThen 12 + 5 = 17.\n", "The answer is 17.")


@pytest.mark.parametrize("text", [REPLY, "<think>abc</think>x", "<think></think>", "plain <think>x</think>"])
def test_any_cut_gives_the_same_split(text: str) -> None:
    whole = split(text)
    for i in range(len(text) + 1):
        for j in range(i, len(text) + 1, 3):
            reasoning, content, order = _fed(text, [i, j])
            assert ((reasoning if text.startswith("<think>") else None), content) == whole, (i, j)
            assert order == sorted(order, key="rc".index)  # reasoning never after content


def test_a_block_left_open_is_all_reasoning() -> None:
    cut = REPLY[: REPLY.index("</think>") + 4]  # max_tokens or a stop string ended it inside the closing tag
    assert split(cut) == ("First, 4 × 3 = 12.\nThen 12 + 5 = 17.\n</th", "")
    assert split("<think>\nFirst, 4") == ("First, 4", "")
    assert split("<thi") == (None, "<thi")  # too short to be a block: the text as it is


def test_no_block_is_all_content() -> None:
    assert split("Hello! I only do arithmetic.") == (None, "Hello! I only do arithmetic.")
    assert split("<thinking>x</thinking>") == (None, "<thinking>x</thinking>")
    assert split(" <think>x</think>y") == (None, " <think>x</think>y")  # only a reply that opens with the tag


def test_long_input_is_linear() -> None:
    import time

    text = "<think>" + "<" * 200_000 + "</think>" + " " * 200_000 + "done"
    started = time.perf_counter()
    reasoning, content, _ = _fed(text, list(range(1, len(text), 7)))
    assert (len(reasoning), content) == (200_000, "done")
    assert time.perf_counter() - started < 5
