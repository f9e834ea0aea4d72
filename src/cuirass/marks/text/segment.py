"""Split an answer into prose tokens and protected spans that the watermark must never touch.

Protected: fenced and indented code, lines that look like code, inline code, URLs, e-mail
addresses, paths and dotted names, LaTeX/dollar maths, quoted strings, brace/bracket blocks
(JSON and friends), HTML tags and Markdown table rows. Each protected span becomes one opaque
`BARRIER` token, so no substitution starts, ends or spans inside it. Digits are never words, so
numbers are never rewritten either.

The tokens tile the text exactly: joining their `text` gives the input back. The spans must be the
same before and after watermarking, so no rule depends on a length or a ratio that a rewrite of the
surrounding words could change (quotes and tags end at the line, code-like lines count characters).

Linear in the text by construction (the answer is the attacker's): the patterns run on RE2 (`linear`), and the
two that need more than an automaton, inline code (a backreference: the closing run of backticks as long as the
opening one) and fences (a closing line at least as long as the opening one), are scanners.
"""

from __future__ import annotations

import bisect
import dataclasses

from cuirass import linear

WORD, SPACE, NEWLINE, PUNCT, OTHER, BARRIER = "W", "S", "N", "P", "O", "B"

_FENCE_LINE = linear.compile(r"^[ \t]*(`{3,}|~{3,})", linear.MULTILINE)
_CLOSE_LINE = {ch: linear.compile(rf"^[ \t]*({ch}+)[ \t]*$", linear.MULTILINE) for ch in "`~"}
_BACKTICKS = linear.compile(r"`+")
_INDENTED = linear.compile(r"^(?: {4,}|\t)[^\n]*\S[^\n]*$", linear.MULTILINE)
_URL = linear.compile(
    r"(?:https?|ftp|file)://[^\s<>\"'`]+|www\.[^\s<>\"'`]+",
    before=r"[^\w]",  # \b before them
    alt=r"[\w.+-]+@[\w-]+\.[\w.-]+",
)
_PATHISH = linear.compile(r"[^\s\"'“”‘’()]*[/\\][^\s\"'“”‘’()]*")
_DOTTED = linear.compile(r"\w+(?:\.\w+)+", before=r"[^\w]", after=r"[^\w]|$")  # \b...\b
_MATH_START = linear.compile(r"[$\\]")  # where maths may start: see _maths
_LETTERS = linear.compile(r"[A-Za-z]+")
# '...' quotes: (?<![\w'’])['‘](?:[^'‘’\n]|(?<=\w)['’](?=\w))+?['’](?![\w'’]). An apostrophe inside stands between
# two word characters, so the inside is written as runs "w'w'w" and other characters, with no lookaround.
_QUOTED = linear.compile(
    r"['‘](?:[^'‘’\n\w]|\w(?:['’]\w)*)+?['’]",
    before=r"[^\w'’]",
    after=r"[^\w'’]|$",
    alt=r"\"[^\"\n]*\"|“[^”\n]*”|«[^»\n]*»",
)
_INERT = "\x01"  # stands in for an opening “ or « that no closing mark follows on its line: see _quoted
_HTML = linear.compile(r"</?[A-Za-z][^<>\n]*>|&[#\w]+;")
_TABLE_ROW = linear.compile(r"^[^\n]*\|[^\n]*\|[^\n]*$", linear.MULTILINE)
_KINDS = ("", WORD, NEWLINE, SPACE, OTHER, PUNCT)  # _TOKEN's groups, in order (from 1)
_TOKEN = linear.compile(
    r"(?P<W>[A-Za-z]+(?:['’][A-Za-z]+)*)|(?P<N>\s*\n\s*)|(?P<S>[^\S\n]+)|(?P<O>[0-9]+)|(?P<P>.)", linear.DOTALL
)

# A line is code-like if it starts or ends like code, or holds several code characters. Counts, not
# ratios: a ratio would change when the watermark rewrites words, and the protected spans must be
# the same before and after.
_CODE_START = linear.compile(
    r"^\s*(?:def |class \w+[:(]|import |from \S+ import |#include|return(?:[^\w]|$)|//|"
    r"/\*|\}|\$ |>>> |<\w|@\w+|public |private |const |let |var |function(?:[^\w]|$)|"
    r"if \(|for \()"
)  # (?:[^\w]|$): \b after a word; the match is only tested, not used
_CODE_END = linear.compile(r"(?:[;{}]|\)\s*:|=>|->)\s*$")
# How a stripped line must start or end for _CODE_START / _CODE_END to match it: a cheap test first, as
# adversarial answers come with tens of thousands of short lines (tests check that these agree).
CODE_STARTS = (
    "def ",
    "class ",
    "import ",
    "from ",
    "#include",
    "return",
    "//",
    "/*",
    "}",
    "$ ",
    ">>> ",
    "<",
    "@",
    "public ",
    "private ",
    "const ",
    "let ",
    "var ",
    "function",
    "if (",
    "for (",
)
CODE_ENDS = (";", "{", "}", ":", ">")
_CODE_CHARS = frozenset("{}[]();=<>|\\$`")
_CODE_STRONG = frozenset("=;{}<>\\|$")
_ORDERED_PAREN = linear.compile(r"^(\d{1,9})\)")  # "1) step" counts as "1. step": the watermark may switch the two


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
    s = line.strip()
    if not s:
        return False
    if s[0].isdecimal() and (m := _ORDERED_PAREN.match(s)) is not None:
        s = f"{m.group(1)}.{s[m.end() :]}"
    if (s.startswith(CODE_STARTS) and _CODE_START.match(s)) or (s.endswith(CODE_ENDS) and _CODE_END.search(s)):
        return True
    return sum(ch in _CODE_CHARS for ch in s) >= 4 and any(ch in _CODE_STRONG for ch in s)


def _fenced(text: str) -> list[tuple[int, int]]:
    """Fenced code blocks: from an opening fence line to the matching closing fence (a line of only that
    character, at least as many), or to the end."""
    spans, pos = [], 0
    while (m := _FENCE_LINE.search(text, pos)) is not None:
        fence = m.group(1)
        line_end = text.find("\n", m.end())
        end = len(text)
        if line_end >= 0:
            for c in _CLOSE_LINE[fence[0]].finditer(text, line_end):
                if c.end(1) - c.start(1) >= len(fence):
                    end = c.end()
                    break
        spans.append((m.start(), end))
        pos = max(end, m.end())
    return spans


def _inline_code(text: str) -> list[tuple[int, int]]:
    """The matches of (`+)[^\\n]*?\\1, inline code, found without backtracking (the pattern has a
    backreference, so no automaton can match it; a backtracking engine takes quadratic time on a run of
    backticks).

    At a start p the run of backticks from p has r of them; the engine tries j = r, r-1, ... 1 backticks
    and takes the first j for which j backticks follow, on the same line, with nothing but non-newlines
    between. For j <= r // 2 they follow at once, inside the run. For j > r // 2 they must be the start of a
    later run of at least j on the line: so the winner is j = min(r, longest later run) if that exceeds
    r // 2, closing at the first later run that long; else j = r // 2 (if r >= 2) closing inside the run.
    """
    runs = [(m.start(), m.end()) for m in _BACKTICKS.finditer(text)]
    if not runs:
        return []
    # for each run, the longest run after it on the same line (0 if none): filled from the right
    longest_after = [0] * len(runs)
    for i in range(len(runs) - 2, -1, -1):
        a, b = runs[i + 1]
        same_line = text.find("\n", runs[i][1], a) == -1
        longest_after[i] = max(b - a, longest_after[i + 1]) if same_line else 0
    spans = []
    i, p = 0, runs[0][0]
    while i < len(runs):
        p = max(p, runs[i][0])
        r = runs[i][1] - p
        j = min(r, longest_after[i])
        if j > r // 2:
            k = i + 1
            while runs[k][1] - runs[k][0] < j:  # exists: longest_after says so, and lines do not end before it
                k += 1
            spans.append((p, runs[k][0] + j))
            i, p = k, runs[k][0] + j
            if p >= runs[k][1]:
                i += 1
        elif r >= 2:
            j = r // 2
            spans.append((p, p + 2 * j))
            p += 2 * j
            if p >= runs[i][1]:
                i += 1
        else:  # one backtick and none after it on the line: no inline code starts here
            i += 1
    return spans


def _maths(text: str) -> list[tuple[int, int]]:
    r"""The matches of  \$\$.+?\$\$ | \\\[.+?\\\] | \\\(.+?\\\) | \$[^\s$][^$\n]*?\$ | \\[A-Za-z]+(?:\{[^}\n]*\})*
    (DOTALL): $$display$$, \[display\], \(inline\), $inline$, \command{arg}.

    A scanner, because as one pattern an opening mark that is never closed keeps every search after it
    reading to the end of the text (or line), which makes finding all matches quadratic even for an automaton.
    Here each opening mark checks for its closing one at once: against the last "$$" / "\]" / "\)" of the
    text, and against the sorted positions of "}" and of line ends.
    """
    n = len(text)
    last = {"$$": text.rfind("$$"), "\\[": text.rfind("\\]"), "\\(": text.rfind("\\)")}
    newlines = _positions(text, "\n")
    closings = _positions(text, "}") if "{" in text else []
    spans: list[tuple[int, int]] = []
    end = 0
    for m in _MATH_START.finditer(text):
        p = m.start()
        if p < end:
            continue
        two = text[p : p + 2]
        if two in last:  # $$...$$, \[...\], \(...\): lazily to the first closing mark after one character
            close = "$$" if two == "$$" else "\\" + ("]" if two == "\\[" else ")")
            if p + 3 <= last[two]:
                end = text.find(close, p + 3) + 2
                spans.append((p, end))
        elif text[p] == "$":  # $...$ on one line, not starting with a space
            if p + 1 < n and not text[p + 1].isspace() and text[p + 1] != "$":
                line_end = _next(newlines, p + 2, n)
                dollar = text.find("$", p + 2, line_end)
                if dollar != -1:
                    end = dollar + 1
                    spans.append((p, end))
        elif (word := _LETTERS.match(text, p + 1)) is not None:  # \command{...}{...}: groups closed on their line
            q = word.end()
            while q < n and text[q] == "{":
                brace = _next(closings, q + 1, n)
                if brace >= _next(newlines, q + 1, n):
                    break
                q = brace + 1
            end = q
            spans.append((p, end))
    return spans


def _positions(text: str, ch: str) -> list[int]:
    """Every index of the character `ch` in `text`, in order."""
    out, i = [], text.find(ch)
    while i != -1:
        out.append(i)
        i = text.find(ch, i + 1)
    return out


def _next(positions: list[int], at: int, default: int) -> int:
    """The first of the sorted `positions` at or after `at`, else `default`."""
    i = bisect.bisect_left(positions, at)
    return positions[i] if i < len(positions) else default


def _quoted(text: str) -> list[tuple[int, int]]:
    """The matches of _QUOTED, with every opening “ or « that has no closing ” or » after it on its line
    replaced first by an inert character (offsets unchanged).

    Such a mark can open no quote, and it plays no other part in the pattern than any other character that is
    neither a word character, a quote nor a newline; but left in place, each one keeps the searches after it
    reading to the end of its line (a pattern of one long line of them and '...' quotes is quadratic).
    """
    if "“" in text or "«" in text:
        lines = text.split("\n")
        for i, line in enumerate(lines):
            for opening, closing in (("“", "”"), ("«", "»")):
                if opening in line:
                    k = line.rfind(closing) + 1  # past the last closing mark of the line (0: none)
                    line = line[:k] + line[k:].replace(opening, _INERT)
            lines[i] = line
        text = "\n".join(lines)
    return [(a, b) for a, b in _QUOTED.spans(text) if b > a]


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
                inner = text[j + 1 : i]
                if opener == "{" or any(c in inner for c in '":{\n'):
                    spans.append((j, i + 1))
    return spans


def protected_spans(text: str) -> list[tuple[int, int]]:
    """Sorted, merged (start, end) character spans the watermark leaves alone."""
    spans: list[tuple[int, int]] = _fenced(text) + _inline_code(text) + _maths(text) + _quoted(text)
    for rx in (_INDENTED, _URL, _HTML, _TABLE_ROW, _PATHISH, _DOTTED):
        spans.extend((a, b) for a, b in rx.spans(text) if b > a)
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
    for s, e in [*protected_spans(text), (len(text), len(text))]:
        for a, b, kind in _TOKEN.tokens(text, pos, s):
            tokens.append(Token(_KINDS[kind], text[a:b], a, b))
        if e > s:
            tokens.append(Token(BARRIER, text[s:e], s, e))
        pos = e
    return tokens
