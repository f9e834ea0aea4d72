"""The linear-time rewrites find exactly what the backtracking patterns they replace found.

Each oracle below is the pattern (or loop) as it was before issue 16, run by Python's `re` on short strings,
where backtracking costs nothing; the new pattern, scanner or one-pass loop must agree on every string drawn
from the characters that matter to it.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cuirass import linear
from cuirass.marks import answer
from cuirass.marks.answer import NUMBER
from cuirass.marks.text import markdown, segment
from cuirass.respond.defenses import strip_reasoning
from cuirass.respond.perturb import equations, math, prose


def texts(alphabet: str | list[str], max_size: int = 40) -> st.SearchStrategy[str]:
    return st.lists(st.sampled_from(list(alphabet)), max_size=max_size).map("".join)


def spans(pattern: str, text: str, flags: int = 0, pos: int = 0, endpos: int | None = None) -> list[tuple[int, int]]:
    rx = re.compile(pattern, flags)
    return [m.span() for m in rx.finditer(text, pos, len(text) if endpos is None else endpos)]


same = settings(max_examples=300, deadline=None, database=None)


def test_classes_are_pythons_and_lookarounds_are_refused() -> None:
    every = "".join(map(chr, (*range(0xD800), *range(0xE000, 0x30000))))
    for cls in (r"\w+", r"\s+", r"\d+", r"[^\W\d]+", r"[^\S\n]+"):
        assert linear.compile(cls).spans(every) == spans(cls, every), cls
    assert linear.compile("final", linear.IGNORECASE).spans("FİNAL fınal Final") == spans(
        "final", "FİNAL fınal Final", re.IGNORECASE
    )
    for bad in (r"(?<=a)b", r"a(?=b)", r"(a)\1", r"\bword", r"(?>a)"):
        with pytest.raises(ValueError):
            linear.compile(bad)


@same
@given(texts("1234567890,.$\\ =+-x×()%\x00<>\n", 30))
def test_equations_match_the_backtracking_pattern(text: str) -> None:
    operator = r"(?:\\times|\\cdot|\\div|[-+*/×÷−])"
    operand = r"(?>\(?(?:\\?\$)?" + NUMBER + r"%?\)?)"
    join = r"(?>[ \t]*" + operator + r"[ \t]*|[ \t]+x[ \t]+)"
    displayed = (
        r"(?<![\w.,])(?P<lhs>" + operand + r"(?:" + join + operand + r")+)[ \t]*=[ \t]*(?:\\?\$)?"
        r"(?P<mask>\x00*)(?:\\?\$)?[ \t]*(?P<res>"
        + NUMBER
        + r")(?!\d)(?![ \t]*(?:"
        + operator
        + r"|x[ \t])[ \t]*[\d.(\\$])"
    )
    old = [(m.span("lhs"), m.span("mask"), m.span("res")) for m in re.finditer(displayed, text)]
    new = [(m.span("lhs"), m.span("mask"), m.span("res")) for m in equations._DISPLAYED.finditer(text)]
    assert new == old
    for a in range(len(text) + 1):
        for b in (a, min(len(text), a + 7), len(text)):
            old_ops = [(a + x, a + y) for x, y in spans(operator + r"|(?<=\s)x(?=\s)", text[a:b])]
            assert equations._operators_in(text, a, b) == old_ops


@same
@given(texts("ab1 .!?\n\t", 30), st.integers(0, 30), st.integers(0, 30))
def test_sentences_and_sentence_starts(text: str, a: int, b: int) -> None:
    a, b = sorted((min(a, len(text)), min(b, len(text))))
    assert equations.SENTENCE.spans(text, a, b) == spans(r"(?:[^.!?\n]|[.!?]+(?=[^\s.!?]))+[.!?]*", text, 0, a, b)
    old_start = 0
    for m in re.finditer(r"[.!?](?=\s)|\n", text[:b]):
        old_start = m.end()
    while old_start < b and text[old_start].isspace():
        old_start += 1
    assert answer._sentence_start(text, b) == old_start


@same
@given(texts(["final answer is ", "answer", " ", ":", "$", "\\", "12", ",345", ".5", "-", "x", "é", "\n"], 12))
def test_final_answer_patterns(text: str) -> None:
    tail = r"\s*(?:is|:|=)\s*:?\s*\$?\\?\$?\s*(?P<v>-?" + NUMBER + ")"
    for rx, old in ((answer._FINAL, r"final\s+answer" + tail), (answer._ANSWER, r"\banswer" + tail)):
        assert [(m.span(), m.span("v")) for m in rx.finditer(text)] == [
            (m.span(), m.span("v")) for m in re.finditer(old, text, re.IGNORECASE)
        ]


@same
@given(texts(["\\boxed{", "{", "}", "x", " ", "\n"], 25))
def test_boxed(text: str) -> None:
    last = None
    for m in re.finditer(r"\\boxed\s*\{", text):
        depth, i = 1, m.end()
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        if depth == 0:
            last = (m.end(), i - 1)
    assert answer._boxed(text) == last


@same
@given(texts("`a \n", 40))
def test_inline_code_scanner(text: str) -> None:
    assert segment._inline_code(text) == spans(r"(`+)[^\n]*?\1", text)


@same
@given(texts(["$", "$$", "\\[", "\\]", "\\(", "\\)", "\\ab", "{", "}", " ", "x", "\n"], 20))
def test_maths_scanner(text: str) -> None:
    old = r"\$\$.+?\$\$|\\\[.+?\\\]|\\\(.+?\\\)|\$[^\s$][^$\n]*?\$|\\[A-Za-z]+(?:\{[^}\n]*\})*"
    assert segment._maths(text) == spans(old, text, re.DOTALL)


@same
@given(texts("'‘’\"“”«»a1 \n.", 30))
def test_quotes(text: str) -> None:
    old = r"\"[^\"\n]*\"|“[^”\n]*”|«[^»\n]*»|(?<![\w'’])['‘](?:[^'‘’\n]|(?<=\w)['’](?=\w))+?['’](?![\w'’])"
    assert segment._quoted(text) == [s for s in spans(old, text) if s[1] > s[0]]


@same
@given(texts(["http://", "www.", "a", "é", ".", "@", "-", "/", " ", "<", "_"], 15))
def test_urls_and_dotted_names(text: str) -> None:
    url = r"\b(?:https?|ftp|file)://[^\s<>\"'`]+|\bwww\.[^\s<>\"'`]+|[\w.+-]+@[\w-]+\.[\w.-]+"
    assert segment._URL.spans(text) == spans(url, text)
    assert segment._DOTTED.spans(text) == spans(r"\b\w+(?:\.\w+)+\b", text)


@same
@given(texts(["```", "~~~", "`", "~", " ", "\t", "x", "\n"], 25))
def test_fences(text: str) -> None:
    out, pos = [], 0
    while (m := re.compile(r"^[ \t]*(`{3,}|~{3,})", re.MULTILINE).search(text, pos)) is not None:
        fence = m.group(1)
        close = re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$", re.MULTILINE)
        line_end = text.find("\n", m.end())
        c = close.search(text, line_end) if line_end >= 0 else None
        end = c.end() if c else len(text)
        out.append((m.start(), end))
        pos = max(end, m.end())
    assert segment._fenced(text) == out


@same
@given(texts(["add", "Add", "ADD", "more", "twice as", "because", "a", "é", "_", " ", "1"], 10))
def test_whole_words(text: str) -> None:
    words = "|".join(sorted(map(re.escape, math._WORDS), key=len, reverse=True))
    assert math._WORD_RE.spans(text) == spans(r"\b(" + words + r")\b", text, re.IGNORECASE)
    assert bool(math._BECAUSE.search(text)) == bool(re.search(r"\bbecause\b", text, re.IGNORECASE))


@same
@given(texts(["is ", "are ", "have ", "the ", "Here ", "there ", "a", "x", "é", ".", "\n", "1. "], 12))
def test_hedge_verbs(text: str) -> None:
    verb = re.compile(
        r"(?<!\bHere )(?<!\bThere )(?<!\bhere )(?<!\bthere )\b(is|are|was|were|can|will|has|have)\s"
        r"(?!(?:not|the|a|an|this|these|that|those|my|your|our|their|its|his|her|no)\b)(?=[a-z])"
    )
    paragraphs = prose._plain_paragraphs(text)
    sentences = [s for sents in prose._sentences(text, paragraphs) for s in sents]
    sentence = re.compile(r"(?:[^.!?\n]|[.!?]+(?=[^\s.!?]))+[.!?]*")
    old_sentences = [
        (m.start() + len(g) - len(g.lstrip()), m.start() + len(g.rstrip()))
        for a, b in paragraphs
        for m in sentence.finditer(text, a, b)
        if (g := m.group()).strip()
    ]
    assert sentences == old_sentences
    assert prose._verbs(text, sentences) == [m.end() for s in sentences for m in verb.finditer(text, *s)]


@same
@given(texts(["<think>", "</think>", "<THINKING a>", "<thinker>", "x", " ", "\n", ".", "<"], 12))
def test_reasoning_blocks(text: str) -> None:
    tag = re.compile(r"<(/?)(?:think|thinking)\b[^<>]*>", re.IGNORECASE)
    assert [(m.span(), m.group(1)) for m in strip_reasoning._tag_pattern(("think", "thinking")).finditer(text)] == [
        (m.span(), m.group(1)) for m in tag.finditer(text)
    ]
    first = re.search(r"\S.*?(?:[.!?](?=\s|$)|\n|$)", re.sub(r"</?\w+[^<>]*>", "", text), re.DOTALL)
    got = strip_reasoning.summarize(text, "first_sentence", "M")
    assert got == ("M" if first is None else first.group().strip()[:200])


@same
@given(texts(["- ", "* ", "1. ", "1) ", "---", "# ", "> ", "`", " ", "\t", "a", "1", ":", "\n"], 12))
def test_line_tests_agree_with_their_patterns(text: str) -> None:
    for line in text.split("\n"):
        assert segment._code_like(line) == _old_code_like(line)
        first = line.lstrip(" \t")[:1]  # lists() tries its two patterns only on lines that start so
        if re.match(r"^[ \t]*[-*_]([ \t]*[-*_]){2,}[ \t]*$", line) or re.match(
            r"^([ \t]*)(?:([-*])|\d{1,9}([.)]))[ \t]+(\S.*)$", line
        ):
            assert first in ("-", "*", "_") or first.isdecimal()
        assert bool(markdown._ITEM.match(line)) == bool(
            re.match(r"^([ \t]*)(?:([-*])|\d{1,9}([.)]))[ \t]+(\S.*)$", line)
        )
    for a, b in prose._PARAGRAPH.spans(text):
        for cut in range(a + 1, b + 1):
            old = any(re.match(r"^\s*(?:#|[-*+>|]|\d+[.)]\s|```)", line) for line in text[a:cut].split("\n"))
            assert prose.structured_paragraph(text, a, cut) == old


def _old_code_like(line: str) -> bool:
    s = re.sub(r"^(\d{1,9})\)", r"\1.", line.strip(), count=1)
    if not s:
        return False
    start = re.compile(
        r"^\s*(?:def |class \w+[:(]|import |from \S+ import |#include|return\b|//|/\*|\}|"
        r"\$ |>>> |<\w|@\w+|public |private |const |let |var |function\b|if \(|for \()"
    )
    if start.match(s) or re.search(r"(?:[;{}]|\)\s*:|=>|->)\s*$", s):
        return True
    return sum(ch in segment._CODE_CHARS for ch in s) >= 4 and any(ch in segment._CODE_STRONG for ch in s)


@same
@given(texts(["1", "2", ",", ".", "+", "=", " ", "\n", "<<1+1=2>>"], 40))
def test_reused_results(text: str) -> None:
    eqs = [e for e in equations.find_equations(text) if e.result]
    old = [
        e
        for e in eqs
        if any(
            equations.to_decimal(m.group()) == equations.to_decimal(text[slice(*e.result)])  # type: ignore[misc]
            for m in re.finditer(r"\d[\d,]*(?:\.\d+)?|\.\d+", text[e.end :])
        )
    ]
    assert math._reused_later(text, eqs, len(text)) == old
