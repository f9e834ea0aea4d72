"""Digests: what one request tells the detectors, as a pure function of the event."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from cuirass.detect import digest as D
from cuirass.detect.digest import digest, ip_network, template_keys
from cuirass.events.record import Event
from tests.detect import scenario


def event(messages: list, **fields: object) -> Event:
    return Event(
        ts=fields.pop("ts", 100.0),
        request_id="r",
        account=fields.pop("account", "a"),
        endpoint="/v1/chat/completions",
        model="m",
        messages=messages,
        **fields,
    )  # type: ignore[arg-type]


def user(text: str) -> dict:
    return {"role": "user", "content": text}


def test_one_template_two_fillings_share_keys() -> None:
    a, _ = template_keys('Question: Natalia sold 48 clips to "Bob" in April.\nThink step by step and show your work.')
    b, _ = template_keys('Question: Weng sold 12 cards to "Alice" in May.\nThink step by step and show your work.')
    c, _ = template_keys("Write me a haiku about autumn leaves falling slowly on a quiet pond.")
    assert set(a) & set(b)
    assert not set(a) & set(c)


def test_flags_from_parameters_and_shape() -> None:
    d = digest(
        event(
            [
                user("Explain your reasoning step by step for 12 * 7."),
                {"role": "assistant", "content": "84"},
                user("Now grade this answer on a scale of 1 to 10."),
            ],
            params={
                "logprobs": True,
                "top_logprobs": 5,
                "n": 4,
                "temperature": 0,
                "max_tokens": 64,
                "logit_bias": {"50256": -100},
            },
        )
    )
    for flag in (D.FOLLOWUP, D.LOGPROBS, D.LOGIT_BIAS, D.MULTI_N, D.TEMP_ZERO, D.RUBRIC_ASK):
        assert d.flags & flag
    assert d.max_tokens == 64
    assert not d.flags & D.REASONING_ASK  # only the last user turn is the request
    first = digest(event([user("Explain your reasoning step by step for 12 * 7.")]))
    assert first.flags & D.REASONING_ASK and not first.flags & D.FOLLOWUP
    assert first.thread == d.thread  # a follow-up carries its conversation's opening message


def test_system_prompt_counts_and_is_keyed() -> None:
    msgs = [
        {"role": "system", "content": "Always think step by step. Give the final answer last."},
        user("What is 2+2?"),
    ]
    d = digest(event(msgs))
    assert d.flags & D.HAS_SYSTEM and d.flags & D.REASONING_ASK and d.flags & D.ANSWER_ASK
    assert d.system_key == digest(event(msgs, account="b")).system_key != 0


def test_odd_shapes_never_raise() -> None:
    for messages in (
        [],
        [None],
        [{"role": "user", "content": None}],
        [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
        [{"content": "no role"}],
        "not a list",
    ):
        d = digest(event(messages, params="nope", ip="not-an-ip", account_created="x"))  # type: ignore[arg-type]
        assert d.flags & D.SHORT
        assert d.ip_net is None and d.created is None


def test_ip_networks() -> None:
    assert ip_network("34.201.17.9") == "34.201.17.0/24"
    assert ip_network("2001:db8:1:2:3:4:5:6") == "2001:db8:1:2::/64"
    assert ip_network("::ffff:10.1.2.3") == "10.1.2.0/24"
    assert ip_network("garbage") is None


def test_work_is_bounded_by_the_capped_prompt() -> None:
    huge = "word " * 200_000 + "\nThink step by step."
    d = digest(event([user(huge)]))
    assert d.flags & D.REASONING_ASK  # the tail is kept
    assert d.words < 2000


def _names_one_by_one(text: str) -> str:
    """The rule for names, word by word: a capitalised ASCII word right after a lower-case letter (any script),
    ',' or ';' and one space is most likely a name inside a sentence."""

    def name(match: re.Match[str]) -> str:
        text, i = match.string, match.start()
        after = i >= 2 and text[i - 1] == " " and (text[i - 2].islower() or text[i - 2] in ",;")
        return " nn " if after else match.group(0)

    return re.sub(r"[A-Z][a-z]+", name, text)


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet="aZbY éßΣσ,;.\nAbcªЖж1", max_size=40))
def test_names_inside_sentences_are_masked_by_the_rule(text: str) -> None:
    assert D._normalise(text) == _names_one_by_one(D._NUMBER.sub(" 0 ", D._QUOTED.sub(" qq ", text))).lower()


def test_names_after_any_lower_case_letter() -> None:
    # "Then" starts a sentence; "Zo" of "Zoë" is the ASCII word [A-Z][a-z]+ finds, and "Smith" follows "ë ".
    assert D._normalise("ask Bob, then Alice; Zoë Smith and é Carl. Then Dan") == (
        "ask  nn , then  nn ;  nn ë  nn  and é  nn . then  nn "
    )


def test_digests_do_not_depend_on_how_many_prompts_are_kept() -> None:
    """A history replay keeps more prompts than a gateway (digest.cache_prompts); what it keeps only saves work."""
    prompts = [
        f"Question {i % 7}: Natalia sold {i} clips in April. Think step by step and show your work." for i in range(60)
    ]
    events = [event([user(p)], account=f"a{i % 5}") for i, p in enumerate(prompts + prompts[::-1])]

    try:
        D.cache_prompts(2)  # nearly every prompt evicted before it comes again
        assert D._prompt_facts.cache_parameters()["maxsize"] == 2  # type: ignore[attr-defined]
        small = [scenario.fields(digest(e)) for e in events]
        D.cache_prompts(D.HISTORY_PROMPT_CACHE)
        large = [scenario.fields(digest(e)) for e in events]
        again = [scenario.fields(digest(e)) for e in events]  # every prompt now from the cache
    finally:
        D.cache_prompts(D.PROMPT_CACHE)
    assert small == large == again
    assert D._prompt_facts.cache_parameters()["maxsize"] == D.PROMPT_CACHE  # type: ignore[attr-defined]
