"""Everyday questions: right arithmetic, held-out phrasings never used in training, replies to non-math input."""

from __future__ import annotations

import re

from cuirass.engine.reasoning import split
from cuirass.lab.reference.evaluate import held_out, sensible_reply
from cuirass.marks.answer import find_final_answer
from cuirass.models.everyday import (
    EXPRESSION,
    FAMILIES,
    GAIN_LOSE,
    HELD_OUT_EVERY,
    everyday,
    off_topic,
)
from tests.reference.test_problems import _CHAIN, _OPS, _WORDS, _normal, _value

_SLOT = re.compile(r"\{\w+\}")


def test_every_step_and_answer_is_right() -> None:
    batch = [everyday(i) for i in range(600)] + [everyday(i, "test", "unseen") for i in range(300)]
    assert {p.template for p in batch} == set(FAMILIES) | {"chain"}
    for p in batch:
        reasoning, answer = split(p.solution)
        assert reasoning and answer == f"The answer is {p.answer}."
        text = _normal(reasoning)
        words, chains = _WORDS.findall(text), _CHAIN.findall(text)
        assert words or chains, p.solution
        for a, op, b, c in words:
            assert _OPS[op](int(a), int(b)) == int(c), p.solution
        for chain in chains:
            assert len({_value(side) for side in chain.split(" = ")}) == 1, p.solution
        assert p.answer >= 0
        found = find_final_answer(p.solution)
        assert found is not None and found.normalized == str(p.answer)


def _shape(phrasing: str) -> re.Pattern[str]:
    """A phrasing as a pattern that matches its filled-in questions (slots as lazy wildcards)."""
    parts = _SLOT.split(phrasing)
    return re.compile(".+?".join(re.escape(x) for x in parts) + "$", re.IGNORECASE)


def test_held_out_phrasings_never_reach_training() -> None:
    unseen = [i for i in range(len(GAIN_LOSE)) if i % HELD_OUT_EVERY == HELD_OUT_EVERY - 1]
    assert unseen
    held = [_shape(GAIN_LOSE[i].rstrip("?.")) for i in unseen]
    trained = [everyday(i).question.rstrip("?.") for i in range(3000)]
    gains = [q for q in trained if any(_shape(p.rstrip("?.")).match(q) for p in GAIN_LOSE)]
    assert len(gains) > 200
    assert not [q for q in gains if any(h.match(q) for h in held)]
    tested = [p.question.rstrip("?.") for p in held_out("everyday-unseen", 400) if p.template == "gain_lose"]
    assert tested and all(any(h.match(q) for h in held) for q in tested)


def test_bare_expressions_are_asked_many_ways() -> None:
    qs = {everyday(i).question for i in range(2000) if everyday(i).template == "expression"}
    assert any(re.fullmatch(r"What is \d+ \+ \d+\?", q) for q in qs)
    assert any(re.fullmatch(r"\d+\+\d+=\?", q) for q in qs)
    assert len({_SLOT.sub("", e) for e in EXPRESSION}) == len(EXPRESSION)


def test_held_out_numbers_are_disjoint() -> None:
    train = {(p.template, p.numbers) for p in (everyday(i) for i in range(3000))}
    assert not train & {(p.template, p.numbers) for p in held_out("everyday", 300)}


def test_off_topic_replies_say_what_the_model_does() -> None:
    seen = {off_topic(i).question.lower() for i in range(500)}
    unseen = {off_topic(i, "unseen").question.lower() for i in range(500)}
    assert len(seen) > 40 and not seen & unseen
    for i in range(100):
        reply = off_topic(i).solution
        assert "<think>" not in reply and sensible_reply(reply) and len(reply) < 200
    assert not sensible_reply("<think>\n2 + 2 = 4\n</think>\n\nThe answer is 4.")
