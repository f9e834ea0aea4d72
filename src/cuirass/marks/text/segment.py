"""Split an answer into prose tokens and protected spans that the watermark must never touch.

Protected: fenced and indented code, lines that look like code, inline code, URLs, e-mail
addresses, paths and dotted names, LaTeX/dollar maths, quoted strings, brace/bracket blocks
(JSON and friends), HTML tags and Markdown table rows. Each protected span becomes one opaque
`BARRIER` token, so no substitution starts, ends or spans inside it. Digits are never words, so
numbers are never rewritten either.

The tokens tile the text exactly: joining their `text` gives the input back. The spans must be the
same before and after watermarking, so no rule depends on a length or a ratio that a rewrite of the
surrounding words could change (quotes and tags end at the line, code-like lines count characters).
"""

from __future__ import annotations

import dataclasses
import re

WORD, SPACE, NEWLINE, PUNCT, OTHER, BARRIER = "W", "S", "N", "P", "O", "B"

_FENCE_LINE = re.compile(r"^[ \t]*(`{3,}|~{3,})", re.M)
_INDENTED = re.compile(r"^(?: {4,}|\t)[^\n]*\S[^\n]*$", re.M)
_INLINE_CODE = re.compile(r"(`+)[^\n]*?\1")
_URL = re.compile(r"\b(?:https?|ftp|file)://[^\s<>\"'`]+|\bwww\.[^\s<>\"'`]+|[\w.+-]+@[\w-]+\.[\w.-]+")
_PATHISH = re.compile(r"[^\s\"'“”‘’()]*[/\\][^\s\"'“”‘’()]*")
_DOTTED = re.compile(r"\b\w+(?:\.\w+)+\b")
_MATH = re.compile(r"\$\$.+?\$\$|\\\[.+?\\\]|\\\(.+?\\\)|\$[^\s$][^$\n]*?\$|\\[A-Za-z]+(?:\{[^}\n]*\})*", re.S)
_QUOTED = re.compile(r"\"[^\"\n]*\"|“[^”\n]*”|«[^»\n]*»|(?<![\w'’])['‘](?:[^'‘’\n]|(?<=\w)['’](?=\w))+?['’](?![\w'’])")
_HTML = re.compile(r"</?[A-Za-z][^<>\n]*>|&[#\w]+;")
_TABLE_ROW = re.compile(r"^[^\n]*\|[^\n]*\|[^\n]*$", re.M)
_TOKEN = re.compile(r"(?P<W>[A-Za-z]+(?:['’][A-Za-z]+)*)|(?P<N>\s*\n\s*)|(?P<S>[^\S\n]+)|(?P<O>[0-9]+)|(?P<P>.)", re.S)

# A line is code-like if it starts or ends like code, or holds several code characters. Counts, not
# ratios: a ratio would change when the watermark rewrites words, and the protected spans must be
# the same before and after.
_CODE_START = re.compile(r"^\s*(?:def |class \w+[:(]|import |from \S+ import |#include|return\b|//|/\*|\}|"
                         r"\$ |>>> |<\w|@\w+|public |private |const |let |var |function\b|if \(|for \()")
_CODE_END = re.compile(r"(?:[;{}]|\)\s*:|=>|->)\s*$")
_CODE_CHARS = frozenset("{}[]();=<>|\\$`")
_CODE_STRONG = frozenset("=;{}<>\\|$")
_ORDERED_PAREN = re.compile(r"^(\d{1,9})\)")  # "1) step" counts as "1. step": the watermark may switch the two


@dataclasses.dataclass(frozen=True, slots=True)
class Token:
    kind: str  # WORD, SPACE (no newline), NEWLINE (whitespace with a newline), PUNCT, OTHER, BARRIER
    text: str
    start: int
    end: int

    @property
    def norm(self) -> str:
        """Lower-cased, with typographic apostrophes folded to ASCII (how the lexicon spells words)."""
        return self.text.lower().replace("’", "'")


def _code_like(line: str) -> bool:
    s = _ORDERED_PAREN.sub(r"\1.", line.strip(), count=1)
    if not s:
        return False
    if _CODE_START.match(s) or _CODE_END.search(s):
        return True
    return sum(ch in _CODE_CHARS for ch in s) >= 4 and any(ch in _CODE_STRONG for ch in s)


def _fenced(text: str) -> list[tuple[int, int]]:
    """Fenced code blocks: from an opening fence line to the matching closing fence, or to the end."""
    spans, pos = [], 0
    while (m := _FENCE_LINE.search(text, pos)) is not None:
        fence = m.group(1)
        close = re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$", re.M)
        line_end = text.find("\n", m.end())
        c = close.search(text, line_end) if line_end >= 0 else None
        end = c.end() if c else len(text)
        spans.append((m.start(), end))
        pos = max(end, m.end())
    return spans


def _braced(text: str) -> list[tuple[int, int]]:
    """Balanced {...} spans, and [...] spans that hold double quotes, colons, braces or newlines (JSON, lists)."""
    spans, stack = [], []
    for i, ch in enumerate(text):
        if ch in "{[":
            stack.append((ch, i))
        elif ch in "}]" and stack:
            opener, j = stack.pop()
            if (opener == "{") != (ch == "}"):
                stack.clear()
                continue
            if not stack:
                inner = text[j + 1:i]
                if opener == "{" or any(c in inner for c in "\":{\n"):
                    spans.append((j, i + 1))
    return spans


def protected_spans(text: str) -> list[tuple[int, int]]:
    """Sorted, merged (start, end) character spans the watermark leaves alone."""
    spans: list[tuple[int, int]] = _fenced(text)
    for rx in (_INDENTED, _INLINE_CODE, _URL, _MATH, _QUOTED, _HTML, _TABLE_ROW, _PATHISH, _DOTTED):
        spans.extend(m.span() for m in rx.finditer(text) if m.end() > m.start())
    spans.extend(_braced(text))
    pos = 0
    for line in text.split("\n"):
        if _code_like(line):
            spans.append((pos, pos + len(line)))
        pos += len(line) + 1
    spans.sort()
    merged: list[tuple[int, int]] = []
    for s, e in spans:
        if merged and s <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], e))
        else:
            merged.append((s, e))
    return merged


def tokenize(text: str) -> list[Token]:
    """Tokens tiling `text`; every protected span is a single BARRIER token."""
    tokens: list[Token] = []
    pos = 0
    for s, e in protected_spans(text) + [(len(text), len(text))]:
        for m in _TOKEN.finditer(text, pos, s):
            tokens.append(Token(m.lastgroup or PUNCT, m.group(), m.start(), m.end()))
        if e > s:
            tokens.append(Token(BARRIER, text[s:e], s, e))
        pos = e
    return tokens
