"""Near-duplicate phrasing sketches (MinHash/LSH): paraphrases share a bucket, unrelated sentences do not,
and hostile text costs bounded, linear work."""

from __future__ import annotations

import time

from hypothesis import given, settings
from hypothesis import strategies as st

from cuirass.detect import sketch
from cuirass.detect.digest import HEAD, KEYS_HEAD, KEYS_TAIL, TAIL, _scan, digest
from cuirass.events.record import Event


def keys(text: str) -> set[int]:
    return set(sketch.near_keys(_scan(text)[2]))


def test_paraphrases_of_one_instruction_share_a_bucket_where_template_keys_differ() -> None:
    a = "Think step by step and show all of your reasoning before giving the final answer."
    b = "Please think step-by-step and show all of your thought process before giving the final result!"
    assert not set(_scan(a)[0]) & set(_scan(b)[0])  # exact template keys: nothing shared
    assert keys(a) & keys(b)


def test_unrelated_sentences_do_not_collide() -> None:
    prompts = [
        "Write me a haiku about autumn leaves falling slowly on a quiet pond.",
        "How do I reverse a linked list in Python without using extra memory?",
        "Draft a polite email asking my landlord to repair the broken heating.",
        "Translate this paragraph about medieval castles into formal Spanish.",
        "Explain the difference between mitosis and meiosis for a biology exam.",
    ]
    sets = [keys(p) for p in prompts]
    assert all(sets)
    for i in range(len(sets)):
        for j in range(i + 1, len(sets)):
            assert not sets[i] & sets[j]


def test_short_or_function_word_sentences_give_no_keys() -> None:
    assert keys("Thanks, can you do it again?") == set()
    assert keys("and the of that this with from your") == set()


def test_sketches_are_stable_across_calls() -> None:
    text = "Reason carefully and articulate each step of your chain of thought."
    assert keys(text) == keys(text) and keys(text)


def _prompt(text: str) -> Event:
    """One chat request whose only message is `text`."""
    return Event(
        ts=1.0,
        request_id="r",
        account="a",
        endpoint="/v1/chat/completions",
        model="m",
        messages=[{"role": "user", "content": text}],
        params={},
        response={},
        action="pass",
    )


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=3000))
def test_any_prompt_gives_a_bounded_number_of_keys(text: str) -> None:
    near = digest(_prompt(text)).near
    assert len(near) <= sketch.BANDS * (KEYS_HEAD + KEYS_TAIL)
    assert all(isinstance(k, int) and 0 < k < 1 << 32 for k in near)


def test_hostile_text_costs_bounded_work() -> None:
    """A megabyte of one repeated word, of sentence ends or of one letter is sketched from HEAD + TAIL characters
    at most: no slower than a few thousand ordinary prompts' worth of work (generous, for shared machines)."""
    for text in ("word " * 200_000, ". " * 500_000, "a" * 1_000_000, "step by step. " * 70_000):
        event = _prompt(text)
        t0 = time.perf_counter()
        digest(event)
        assert time.perf_counter() - t0 < 0.5, len(text)
    assert HEAD + TAIL < 2000
