"""The per-event facts detectors need, computed once per event; the text itself is dropped.

A `Digest` is a pure function of one `Event`. Every signal reads digests, never raw events,
so the text is scanned once per request (hot path) and an offline replay can keep millions of
digests in memory to sort them by event time. Work per event is bounded: only the first
`HEAD` and last `TAIL` characters of a prompt are looked at.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import sys
import zlib
from collections.abc import Callable
from typing import Any

from cuirass.detect.phrases import ANSWER, OTHER, REASONING, RUBRIC, TOPICS, line_words, topic_of, words
from cuirass.detect.sketch import near_keys
from cuirass.events.record import Event, message_text

HEAD, TAIL = 1000, 500  # characters of a prompt that are examined (instructions sit at either end)
SYSTEM_CAP = 2000
THREAD_CHARS = 500  # characters of a conversation's opening message that identify it

# Flag bits of Digest.flags.
REASONING_ASK = 1 << 0  # asks for chain of thought / worked steps
RUBRIC_ASK = 1 << 1  # asks to grade or compare answers
FOLLOWUP = 1 << 2  # the request carries earlier assistant turns (a conversation continues)
HAS_SYSTEM = 1 << 3
LOGPROBS = 1 << 4  # logprobs / top_logprobs / echo asked for
LOGIT_BIAS = 1 << 5
MULTI_N = 1 << 6  # n > 1 or best_of > 1
TEMP_ZERO = 1 << 7
SHORT = 1 << 8  # fewer than 4 words ("continue", "thanks")
TOOLS = 1 << 9  # tools / functions offered
ANSWER_ASK = 1 << 10  # demands a checkable final answer ("final answer: ...", \\boxed)

# Variable spans a template fills in: quoted or fenced text and links, numbers, mid-sentence
# names. They become placeholders so that two fillings of one template normalise alike.
_QUOTED = re.compile(r"```.*?```|`[^`\n]{1,200}`|\"[^\"\n]{1,300}\"|“[^”\n]{1,300}”|«[^»\n]{1,300}»|https?://\S+", re.S)
_NUMBER = re.compile(r"\d+(?:[.,:/]\d+)*")
# A capitalised word after a lower-case letter (or "," / ";") and a space: most likely a name. Where that letter
# is ASCII the pattern alone decides (no Python call per word); after a non-ASCII letter _name checks it. The
# look-behind comes after [A-Z] so that `re` still skips fast to the next capital.
_NAME_AFTER_ASCII = re.compile(r"[A-Z](?<=[a-z,;] .)[a-z]+")
_NAME_AFTER_OTHER = re.compile(r"[A-Z](?<=[^\x00-\x7f] .)[a-z]+")
_SENTENCE_ENDS = (". ", "? ", "! ", "; ", ".\t", "。", "！", "？", "；")
KEYS_HEAD, KEYS_TAIL = 8, 4  # sentences of a prompt that become template keys
EDGE_WORDS = 5  # words in the prefix / suffix keys
CODE = TOPICS.index("code")
SKETCH_MIN_WORDS = 12  # shorter prompts hold no task of their own: their phrasing links no one (signals.phrasing)
# Prompts whose text facts are kept (_prompt_facts), the most recently used: the same prompt comes again and again
# (a regenerate or retry, "continue", an evaluation set sent by many accounts). Each is at most HEAD + TAIL
# characters, about 1.1 KB with its facts on typical traffic: about 18 MB in a gateway.
PROMPT_CACHE = 16384
# A history replay (`detect run`) reads weeks of traffic, where a prompt recurs across thousands of accounts and
# hours apart: with this many kept, each digesting process computes the facts of about a third as many prompts
# again (on the benchmark log at ten times the accounts, 23% of events miss instead of 72%) for about 140 MB
# more (BENCHMARKS.md, "A history's digesting processes keep more prompts").
HISTORY_PROMPT_CACHE = 131072


FIELDS = (
    "ts",
    "account",
    "model",
    "created",
    "ip_net",
    "user_agent",
    "payment",
    "flags",
    "max_tokens",
    "keys",
    "system_key",
    "topic",
    "words",
    "phrase",
    "thread",
    "near",
)  # Digest's fields, in __init__'s order

# Called as a plain function: compiled (cuirass.compiled), mypyc's own str.lower misses Unicode's context rules
# (a final capital sigma lowers to 'σ', where Python gives 'ς'), and a template key must not depend on the build.
_lower: Callable[[str], str] = str.lower


class Digest:
    """What one request tells the detectors (see module docstring)."""

    __slots__ = FIELDS

    def __init__(
        self,
        ts: float,
        account: str,
        model: str,
        created: float | None,
        ip_net: str | None,
        user_agent: str | None,
        payment: str | None,
        flags: int,
        max_tokens: int | None,
        keys: tuple[int, ...],
        system_key: int,
        topic: int,
        words: int,
        phrase: str | None,
        thread: int = 0,
        near: tuple[int, ...] = (),
    ) -> None:
        self.ts = ts
        self.account = account
        self.model = model
        self.created = created
        self.ip_net = ip_net
        self.user_agent = user_agent
        self.payment = payment
        self.flags = flags
        self.max_tokens = max_tokens
        self.keys = keys  # template keys: hashes of normalised sentences, prefix and suffix
        self.system_key = system_key  # hash of the normalised system prompt, 0 when none
        self.topic = topic  # index into phrases.TOPICS
        self.words = words
        self.phrase = phrase  # the elicitation phrase found, for reasons
        self.thread = thread  # hash of the conversation's first user message (same for its follow-ups)
        self.near = near  # LSH keys of the MinHash sketches of its key sentences (sketch.py): phrasing up to paraphrase

    def __repr__(self) -> str:
        return f"Digest({self.account!r}, ts={self.ts}, flags={self.flags:#x}, topic={self.topic})"

    def __reduce__(self) -> tuple[type[Digest], tuple[Any, ...]]:
        # Pickled as its fields in __init__'s order: about three times faster than the default for slots.
        return Digest, tuple(getattr(self, name) for name in FIELDS)


def _intern(value: Any) -> str | None:
    return sys.intern(value) if isinstance(value, str) else None


@functools.lru_cache(maxsize=65536)
def ip_network(ip: str) -> str | None:
    """The /24 (IPv4) or /64 (IPv6) holding an address: hosts of one site or one rented block."""
    try:
        addr = ipaddress.ip_address(ip.strip().split("%")[0])
    except ValueError:
        return None
    if addr.version == 6 and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    bits = 24 if addr.version == 4 else 64
    return sys.intern(str(ipaddress.ip_network(f"{addr}/{bits}", strict=False)))


def _capped(text: str) -> str:
    return text if len(text) <= HEAD + TAIL else text[:HEAD] + "\n" + text[-TAIL:]


def _name(match: re.Match[str]) -> str:
    return " nn " if match.string[match.start() - 2].islower() else match.group(0)


def _normalise(text: str) -> str:
    # Simple passes: each regex starts with a narrow character set, which `re` scans fast.
    text = _QUOTED.sub(" qq ", text)
    text = _NUMBER.sub(" 0 ", text)
    # The second name pass reads the first's output, which leaves every word after a non-ASCII letter and a
    # space where it was, with the same letter before it (the first rewrites only words after ASCII).
    names = _NAME_AFTER_ASCII.sub(" nn ", text)
    if not text.isascii():
        names = _NAME_AFTER_OTHER.sub(_name, names)
    return _lower(names)


def _hash(words: list[str]) -> int:
    # crc32 is stable across processes (unlike hash()), so replays are deterministic.
    return zlib.crc32(" ".join(words).encode()) or 1


def _sentence_lines(text: str) -> str:
    """The text with every sentence on a line of its own."""
    for end in _SENTENCE_ENDS:
        if end in text:
            text = text.replace(end, "\n")
    return text


def template_keys(text: str) -> tuple[tuple[int, ...], list[str]]:
    """(template keys, all words) of a prompt: hashes of its normalised sentences and edges."""
    keys, all_words, _ = _scan(text)
    return keys, all_words


def _scan(text: str) -> tuple[tuple[int, ...], list[str], list[list[str]]]:
    """(template keys, all words, the words of each key sentence) of a prompt."""
    sentences = line_words(_sentence_lines(_normalise(_capped(text))))
    all_words: list[str] = []
    keys: list[int] = []
    keyed: list[list[str]] = []
    last = len(sentences) - KEYS_TAIL
    for i, toks in enumerate(sentences):
        if not toks:
            continue
        all_words.extend(toks)
        if (i < KEYS_HEAD or i >= last) and 3 <= len(toks) <= 40:
            keys.append(_hash(toks))
            keyed.append(toks)
    if len(all_words) >= 12:  # a template may wrap the content inside one sentence ("Solve: ...")
        keys.append(_hash(["^", *all_words[:EDGE_WORDS]]))
        keys.append(_hash([*all_words[-EDGE_WORDS:], "$"]))
    return tuple(dict.fromkeys(keys)), all_words, keyed


def _param_flags(params: dict[str, Any]) -> int:
    flags = 0
    if params.get("logprobs") or params.get("top_logprobs") or params.get("echo"):
        flags |= LOGPROBS
    if params.get("logit_bias"):
        flags |= LOGIT_BIAS
    n = params.get("n")
    best_of = params.get("best_of")
    if (isinstance(n, int) and n > 1) or (isinstance(best_of, int) and best_of > 1):
        flags |= MULTI_N
    temperature = params.get("temperature")
    if isinstance(temperature, (int, float)) and temperature == 0:
        flags |= TEMP_ZERO
    if params.get("tools") or params.get("functions"):
        flags |= TOOLS
    return flags


@functools.lru_cache(maxsize=4096)
def _system_facts(system: str) -> tuple[int, str | None, bool]:
    """(key, reasoning phrase, demands an answer format) of a system prompt; they repeat, so cached."""
    capped = system[:SYSTEM_CAP]
    lowered = _lower(capped)
    index = set(words(lowered))
    phrase = REASONING.search(lowered, index)
    return (
        _hash(words(_normalise(capped))),
        sys.intern(phrase) if phrase else None,
        ANSWER.search(lowered, index) is not None,
    )


PromptFacts = tuple[tuple[int, ...], int, str | None, bool, bool, int, tuple[int, ...]]


def _prompt_facts_of(capped: str) -> PromptFacts:
    """(template keys, words, reasoning phrase, demands an answer format, asks to grade, topic, near-duplicate
    keys) of a prompt already cut to HEAD + TAIL characters: a pure function of that text, so cached
    (_prompt_facts)."""
    keys, prompt_words, keyed = _scan(capped)
    lowered = _lower(capped)
    index = set(prompt_words)  # normalised words: enough to pick which phrase patterns to try
    phrase = REASONING.search(lowered, index)
    return (
        keys,
        len(prompt_words),
        sys.intern(phrase) if phrase is not None else None,
        ANSWER.search(lowered, index) is not None,
        RUBRIC.search(lowered, index) is not None,
        topic_of(prompt_words),
        near_keys(keyed) if len(prompt_words) >= SKETCH_MIN_WORDS else (),
    )


_prompt_facts: Callable[[str], PromptFacts] = functools.lru_cache(maxsize=PROMPT_CACHE)(_prompt_facts_of)


def cache_prompts(size: int) -> None:
    """Keep the text facts of the `size` most recently used prompts in this process (PROMPT_CACHE unless
    changed; a history replay's processes keep HISTORY_PROMPT_CACHE). Digests do not depend on it."""
    global _prompt_facts  # noqa: PLW0603 - the process's one cache, replaced whole
    if size != _prompt_facts.cache_parameters()["maxsize"]:  # type: ignore[attr-defined]
        _prompt_facts = functools.lru_cache(maxsize=size)(_prompt_facts_of)


def digest(event: Event) -> Digest:
    """Digest one event. Never raises on odd content: unknown shapes count as empty text."""
    # Any, not the declared element type: compiled (cuirass.compiled), a loop over list[dict] checks every item.
    messages: list[Any] = event.messages if isinstance(event.messages, list) else []
    last_user = first_user = system_message = None
    flags = 0
    for message in messages:
        if not isinstance(message, dict):
            continue
        role = message.get("role")
        if role == "user":
            last_user = message
            if first_user is None:
                first_user = message
        elif role == "assistant":
            flags |= FOLLOWUP
        elif system_message is None and role in ("system", "developer"):
            system_message = message
    prompt = message_text(last_user) if last_user is not None else ""
    first = prompt if first_user is last_user else message_text(first_user) if first_user is not None else ""
    params = event.params if isinstance(event.params, dict) else {}
    flags |= _param_flags(params)
    keys, n_words, phrase, answer, rubric, topic, near = _prompt_facts(_capped(prompt))
    system_key = 0
    system = message_text(system_message) if system_message is not None else ""
    if system:
        flags |= HAS_SYSTEM
        system_key, system_phrase, system_answer = _system_facts(system)
        phrase = phrase or system_phrase
        answer = answer or system_answer
    if phrase is not None:  # interned by _prompt_facts or _system_facts
        flags |= REASONING_ASK
    if answer:
        flags |= ANSWER_ASK
    if rubric:
        flags |= RUBRIC_ASK
    if n_words < 4:
        flags |= SHORT
    if topic == OTHER and ("```" in prompt or "def " in prompt):
        topic = CODE  # fenced code was replaced by a placeholder before topic words were counted
    max_tokens = params.get("max_tokens", params.get("max_completion_tokens"))
    return Digest(
        ts=float(event.ts),
        account=sys.intern(str(event.account)),
        model=sys.intern(str(event.model)),
        created=float(event.account_created) if isinstance(event.account_created, (int, float)) else None,
        ip_net=ip_network(event.ip) if isinstance(event.ip, str) else None,
        user_agent=_intern(event.user_agent),
        payment=_intern(event.payment_fingerprint),
        flags=flags,
        max_tokens=max_tokens if isinstance(max_tokens, int) and not isinstance(max_tokens, bool) else None,
        keys=keys,
        system_key=system_key,
        topic=topic,
        words=n_words,
        phrase=phrase,
        thread=zlib.crc32(first[:THREAD_CHARS].encode()) if first else 0,
        near=near,
    )
