"""Pattern matching in time linear in the text, for the hostile answers the text defenses rewrite.

On the flagged path every byte of an upstream answer is shaped by the attacker (SECURITY.md), and a
backtracking engine such as Python's `re` takes quadratic or exponential time on a few kilobytes of the
right characters. Every pattern of `cuirass.respond` and `cuirass.marks` is therefore compiled here for RE2 (google-re2; Cox,
"Regular Expression Matching Can Be Simple And Fast", 2007, and "Regular Expression Matching in the Wild",
2010): an automaton whose running time is linear in the text whatever the pattern, and which releases the
GIL while it runs. RE2 refuses what needs backtracking (lookaround, backreferences, atomic groups). Where a
pattern used a lookaround, the lookaround becomes context that the automaton reads but that is not part of
the match: `before` (the one character before a match, a lookbehind) and `after` (what must follow it, a
lookahead); anything else is a hand-written scanner in the module that needs it.

A pattern compiled here gives the same matches as Python's `re` would for the same pattern:
- \\w \\s \\d and their negations, also inside classes, are Python's Unicode classes, read from Python at
  import (RE2's own are ASCII);
- with IGNORECASE, "i" also matches "İ" and "ı", as in Python (RE2 folds neither);
- `pos` and `endpos` as in Python: the text before `pos` is context (`before` sees it; `^` matches only at
  0), and the text ends at `endpos` (`$` and `after` see nothing beyond);
- alternation is leftmost-first and quantifiers greedy or lazy as written: RE2 chooses the match and the
  submatches that a backtracking engine would choose.
Known differences: `$` without MULTILINE is the end of the text only (Python's also matches before a final
newline; the patterns here match lines, or cover that case with an explicit newline); a lone surrogate,
which UTF-8 cannot encode, matches no class; after an empty match the search moves on one character.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import re as _py_re  # only to read Python's own character classes, once, on a fixed string
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import numpy as np
import re2

IGNORECASE, MULTILINE, DOTALL = 1, 2, 4
T = TypeVar("T")

_ANCHOR = re2._re2.RE2.Anchor  # the raw matcher: the public wrapper re-encodes the whole text on every call
_NO_SPAN = (-1, -1)
_CACHE_MIN = 256  # texts shorter than this are encoded on each call; longer ones once per thread


def _class_ranges(py_class: str, every: str) -> str:
    """RE2 class body (no brackets) of exactly the code points Python's `re` puts in `py_class`."""
    runs = []
    for m in _py_re.finditer(py_class + "+", every):
        a, b = ord(m.group()[0]), ord(m.group()[-1])
        runs.append(f"\\x{{{a:x}}}" if a == b else f"\\x{{{a:x}}}-\\x{{{b:x}}}")
    return "".join(runs)


_EVERY = np.concatenate((np.arange(0xD800), np.arange(0xE000, 0x110000))).astype("<u4").tobytes().decode("utf-32-le")
_CLASSES = {e: _class_ranges("\\" + e, _EVERY) for e in "wWsSdD"}
del _EVERY
_I_EXTRA = "\\x{130}\\x{131}"  # İ and ı: Python's IGNORECASE matches them with i; RE2's folding does not


@dataclasses.dataclass(slots=True)
class _Translated:
    pattern: str
    names: list[str | None]  # one entry per capturing group, in order: its name or None


def _escape_char(ch: str) -> str:
    return ch if ch.isascii() and ch.isalnum() else f"\\x{{{ord(ch):x}}}"


def _class_escape(pattern: str, i: int) -> tuple[str, int]:
    """The literal character of the escape at pattern[i] ("\\\\") inside a class, and where it ends."""
    e = pattern[i + 1]
    simple = {"n": "\n", "t": "\t", "r": "\r", "f": "\f", "v": "\v", "a": "\a", "b": "\b"}
    if e in simple:
        return simple[e], i + 2
    if e in "xuU":
        width = {"x": 2, "u": 4, "U": 8}[e]
        return chr(int(pattern[i + 2 : i + 2 + width], 16)), i + 2 + width
    if e == "0":
        return "\0", i + 2
    if e.isalnum():
        raise ValueError(f"unsupported escape \\{e} in a class")
    return e, i + 2


def _translate(pattern: str, flags: int, suffix: str = "") -> _Translated:
    """`pattern` (Python syntax) as RE2 syntax with Python's semantics; group names get `suffix`."""
    out: list[str] = []
    names: list[str | None] = []
    ignore = bool(flags & IGNORECASE)
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\":
            e = pattern[i + 1]
            if e in _CLASSES:
                out.append(f"[{_CLASSES[e]}]")
            elif e in "bB":
                raise ValueError("\\b is ASCII-only in RE2: express it with before= / after=")
            elif e.isdigit() and e != "0":
                raise ValueError("backreferences need a scanner")
            elif e == "Z":
                out.append("\\z")
            else:
                out.append(pattern[i : i + 2])
            i += 2
        elif c == "[":
            body, i = _translate_class(pattern, i, ignore)
            out.append(body)
        elif c == "(":
            if pattern.startswith("(?P<", i):
                end = pattern.index(">", i)
                names.append(pattern[i + 4 : end])
                out.append(f"(?P<{pattern[i + 4 : end]}{suffix}>")
                i = end + 1
                continue
            if pattern.startswith("(?", i) and not pattern.startswith("(?:", i):
                raise ValueError(
                    f"unsupported group {pattern[i : i + 4]!r}: lookaround and flags need before=/after="
                    " or the flags argument"
                )
            if not pattern.startswith("(?", i):
                names.append(None)
            out.append(c)
            i += 1
        elif ignore and c in "iI":
            out.append(f"[iI{_I_EXTRA}]")
            i += 1
        else:
            out.append(c)
            i += 1
    return _Translated("".join(out), names)


def _translate_class(pattern: str, i: int, ignore: bool) -> tuple[str, int]:
    """The class starting at pattern[i] ("[") in RE2 syntax, and the index after its "]"."""
    j = i + 1
    negated = pattern.startswith("^", j)
    j += negated
    parts: list[str] = []
    chars: list[tuple[int, int]] = []  # literal ranges, to tell whether "i" is in the class
    first = True
    while True:
        c = pattern[j]
        if c == "]" and not first:
            break
        first = False
        if c == "\\" and pattern[j + 1] in _CLASSES:  # (\w and \S already hold İ and ı)
            parts.append(_CLASSES[pattern[j + 1]])
            j += 2
            continue
        lo, j = _class_escape(pattern, j) if c == "\\" else (c, j + 1)
        hi = lo
        if pattern[j] == "-" and pattern[j + 1] != "]":
            hi, j = _class_escape(pattern, j + 1) if pattern[j + 1] == "\\" else (pattern[j + 1], j + 2)
        chars.append((ord(lo), ord(hi)))
        parts.append(_escape_char(lo) if lo == hi else f"{_escape_char(lo)}-{_escape_char(hi)}")
    if ignore and any(a <= ord(x) <= b for a, b in chars for x in "iI"):
        parts.append(_I_EXTRA)
    return "[" + ("^" if negated else "") + "".join(parts) + "]", j + 1


def _re2(pattern: str, flags: int) -> re2._Regexp:
    prefix = "".join(f for bit, f in ((IGNORECASE, "i"), (MULTILINE, "m"), (DOTALL, "s")) if flags & bit)
    options = re2.Options()
    options.max_mem = 64 << 20  # Python's \w is 700+ ranges: give the lazily built DFA room (a cap, not a cost)
    return re2.compile(f"(?{prefix}){pattern}" if prefix else pattern, options)


class _Subject:
    """A text as UTF-8 for RE2, with character <-> byte offsets (identity for ASCII text)."""

    __slots__ = ("_bytes_of", "_chars_of", "ascii", "data", "text")

    def __init__(self, text: str) -> None:
        raw = text.encode("utf-8", "surrogatepass")
        self.text = text
        self.data = memoryview(raw)
        self.ascii = len(raw) == len(text)
        self._bytes_of: list[int] | None = None
        self._chars_of: list[int] | None = None

    def _maps(self) -> None:
        if len(self.text) < 512:  # a line or a word: cheaper in Python than setting up arrays
            width = [1 if ch < "\x80" else 2 if ch < "\u0800" else 3 if ch < "\U00010000" else 4 for ch in self.text]
            bytes_of = [0, *itertools.accumulate(width)]
            chars_of = [0] * (len(self.data) + 1)
            for i, b in enumerate(bytes_of):
                chars_of[b] = i
            self._bytes_of, self._chars_of = bytes_of, chars_of
            return
        lead = (np.frombuffer(self.data, dtype=np.uint8) & 0xC0) != 0x80
        self._bytes_of = np.append(np.flatnonzero(lead), len(self.data)).tolist()
        self._chars_of = np.concatenate(([0], np.cumsum(lead))).tolist()

    def byte(self, char: int) -> int:
        if self.ascii or char == 0:
            return char
        if char == len(self.text):
            return len(self.data)
        if self._bytes_of is None:
            self._maps()
        return self._bytes_of[char]  # type: ignore[index]

    def char(self, byte: int) -> int:
        """The character offset of a byte offset (-1 stays -1: a group that took no part)."""
        if self.ascii or byte <= 0:
            return byte
        if self._chars_of is None:
            self._maps()
        return self._chars_of[byte]  # type: ignore[index]


_LOCAL = threading.local()


def _subject(text: str) -> _Subject:
    """The encoded text; the last few long texts of this thread are kept, so a loop of searches over one
    text encodes it once (each call would otherwise cost time linear in the whole text)."""
    if len(text) < _CACHE_MIN:
        return _Subject(text)
    recent: list[_Subject] = _LOCAL.__dict__.setdefault("recent", [])
    for s in recent:
        if s.text is text:
            return s
    s = _Subject(text)
    recent.insert(0, s)
    del recent[4:]
    return s


class Match:
    """One match: group spans in characters of `string`, as `re.Match` reports them."""

    __slots__ = ("_names", "_spans", "string")

    def __init__(self, string: str, spans: list[tuple[int, int]], names: dict[str, int]) -> None:
        self.string = string
        self._spans = spans
        self._names = names

    def span(self, group: int | str = 0) -> tuple[int, int]:
        return self._spans[group if group.__class__ is int else self._names[group]]  # type: ignore[index]

    def start(self, group: int | str = 0) -> int:
        return self._spans[group if group.__class__ is int else self._names[group]][0]  # type: ignore[index]

    def end(self, group: int | str = 0) -> int:
        return self._spans[group if group.__class__ is int else self._names[group]][1]  # type: ignore[index]

    def group(self, group: int | str = 0) -> Any:  # str, or None for a group that took no part (as re types it)
        a, b = self._spans[group if group.__class__ is int else self._names[group]]  # type: ignore[index]
        return None if a < 0 else self.string[a:b]

    def __getitem__(self, group: int | str) -> Any:
        return self.group(group)

    def groups(self, default: str | None = None) -> tuple[Any, ...]:
        return tuple(default if (g := self.group(i)) is None else g for i in range(1, len(self._spans)))

    @property
    def lastgroup(self) -> str | None:
        """The name of the named group that closed last (the outermost on a tie), as `re` reports it."""
        best, best_end = None, -1
        for name, i in self._names.items():
            if self._spans[i][1] > best_end:
                best, best_end = name, self._spans[i][1]
        return best


_COMPILED: list[Pattern] = []  # every pattern compiled here, for the tests that check each one's running time


def compiled() -> list[Pattern]:
    """Every pattern compiled so far (the modules that use them compile theirs at import)."""
    return list(_COMPILED)


class Pattern:
    """A compiled pattern; the methods take and return character offsets like `re.Pattern`'s."""

    def __init__(
        self, main: str, flags: int = 0, *, before: str | None = None, after: str | None = None, alt: str | None = None
    ) -> None:
        self.pattern = main
        self.flags = flags
        _COMPILED.append(self)
        m = _translate(main, flags)
        self.groupindex = {name: i + 1 for i, name in enumerate(m.names) if name}
        self._plain = before is None and after is None and alt is None
        if self._plain:
            self._rx = _re2(m.pattern, flags)
            self._near: re2._Regexp | None = None
            return
        for extra in (before, after):
            if extra is not None and _translate(extra, flags).names:
                raise ValueError("before= and after= may not capture")
        k = len(m.names)
        b = _translate(before, flags).pattern if before is not None else None
        tail = f"(?:{_translate(after, flags).pattern})" if after is not None else ""
        a = _translate(alt, flags) if alt is not None else None
        n_alt = len(a.names) if a is not None else 0
        if a is not None:
            self.groupindex.update({name: k + 1 + i for i, name in enumerate(a.names) if name})
        # RE2 program: main [| alt] [| before main-copy], each branch marked by a group; a route says, for the
        # branch that took part, which RE2 group holds each public group (None: not in this branch).
        pieces = [f"\\A(?P<_m0>{m.pattern}){tail}" if b is not None else f"(?P<_m0>{m.pattern}){tail}"]
        self._routes = [(1, [1, *range(2, 2 + k), *[None] * n_alt])]
        at = 2 + k
        if a is not None:
            pieces.append(f"(?P<_a>{a.pattern})")
            self._routes.append((at, [at, *[None] * k, *range(at + 1, at + 1 + n_alt)]))
            at += 1 + n_alt
        self._near = None
        if b is not None:
            copy = f"{b}(?P<_m1>{_translate(main, flags, suffix='__1').pattern}){tail}"
            pieces.append(copy)
            self._routes.append((at, [at, *range(at + 1, at + 1 + k), *[None] * n_alt]))
            self._near = _re2(copy, flags)  # the same branch alone, anchored one character before a start
        self._near_route = [1, *range(2, 2 + k), *[None] * n_alt]
        self._rx = _re2("|".join(pieces), flags)

    def _public(self, raw: list[tuple[int, int]], near: bool) -> list[tuple[int, int]]:
        """Public group spans (bytes) from RE2's: of the whole program, or of `_near`."""
        if self._plain:
            return raw
        if near:
            route = self._near_route
        else:
            route = next(r for marker, r in self._routes if raw[marker] != _NO_SPAN)
        return [_NO_SPAN if i is None else raw[i] for i in route]

    def _walk(self, text: str, pos: int, endpos: int | None) -> Iterator[tuple[_Subject, list[tuple[int, int]]]]:
        """Each match from `pos` on, left to right, without overlaps: its public group spans, in bytes."""
        s = _subject(text)
        end = len(text) if endpos is None else max(0, min(endpos, len(text)))
        data = s.data[: s.byte(end)]
        size, char, byte = len(data), s.char, s.byte
        match, near = self._rx._regexp.Match, self._near._regexp.Match if self._near is not None else None
        plain, anchored, unanchored = self._plain, _ANCHOR.ANCHOR_START, _ANCHOR.UNANCHORED
        pos = max(0, pos)
        while pos <= end:
            if near is not None and pos > 0:
                # the lookbehind branch at exactly `pos` reads the character before it: it comes first there
                raw = near(anchored, data, byte(pos - 1), size)
                if raw[0] != _NO_SPAN:
                    spans = self._public(raw, True)
                else:
                    raw = match(unanchored, data, byte(pos), size)
                    if raw[0] == _NO_SPAN:
                        return
                    spans = self._public(raw, False)
            else:
                spans = match(unanchored, data, byte(pos), size)
                if spans[0] == _NO_SPAN:
                    return
                if not plain:
                    spans = self._public(spans, False)
            yield s, spans
            a, b = char(spans[0][0]), char(spans[0][1])
            pos = b if b > a else b + 1

    def finditer(self, text: str, pos: int = 0, endpos: int | None = None) -> Iterator[Match]:
        """Non-overlapping matches, left to right, as `re.Pattern.finditer`."""
        names = self.groupindex
        for s, spans in self._walk(text, pos, endpos):
            if not s.ascii:
                char = s.char
                spans = [(char(a), char(b)) for a, b in spans]
            yield Match(text, spans, names)

    def tokens(self, text: str, pos: int = 0, endpos: int | None = None) -> Iterator[tuple[int, int, int]]:
        """(start, end, the first group that took part) of each match: a tokenizer whose alternatives are
        groups learns each token's kind without a match object."""
        for s, spans in self._walk(text, pos, endpos):
            kind = 1
            while spans[kind][0] < 0:
                kind += 1
            yield s.char(spans[0][0]), s.char(spans[0][1]), kind

    def spans(self, text: str, pos: int = 0, endpos: int | None = None) -> list[tuple[int, int]]:
        """The (start, end) of each match, as finditer would find them (cheaper: no match objects)."""
        return [(s.char(spans[0][0]), s.char(spans[0][1])) for s, spans in self._walk(text, pos, endpos)]

    def search(self, text: str, pos: int = 0, endpos: int | None = None) -> Match | None:
        return next(self.finditer(text, pos, endpos), None)

    def match(self, text: str, pos: int = 0, endpos: int | None = None) -> Match | None:
        """A match starting exactly at `pos` (patterns without before/after/alt only)."""
        if not self._plain:
            raise ValueError("match() is for plain patterns")
        s = _subject(text)
        end = len(text) if endpos is None else max(0, min(endpos, len(text)))
        if pos > end:
            return None
        data = s.data[: s.byte(end)]
        raw = self._rx._regexp.Match(_ANCHOR.ANCHOR_START, data, s.byte(pos), len(data))
        if raw[0] == _NO_SPAN:
            return None
        spans = raw if s.ascii else [(s.char(a), s.char(b)) if a >= 0 else _NO_SPAN for a, b in raw]
        return Match(text, spans, self.groupindex)

    def findall(self, text: str) -> list[str]:
        """The matched strings (patterns without groups)."""
        return [text[m.start() : m.end()] for m in self.finditer(text)]

    def sub(self, repl: Callable[[Match], str], text: str) -> str:
        """`text` with every match replaced by `repl(match)`."""
        out, last = [], 0
        for m in self.finditer(text):
            out.append(text[last : m.start()])
            out.append(repl(m))
            last = m.end()
        out.append(text[last:])
        return "".join(out)


def per_text(fn: Callable[..., T]) -> Callable[..., T]:
    """`fn(text, *args)` remembered for the last few long texts of this thread (by identity, as strings are
    immutable): the defenses ask the same questions of one answer many times (its final answer, its
    equations), and each answer costs one pass, not one per question. Results are shared: treat them as
    read-only."""
    local = threading.local()

    @functools.wraps(fn)
    def cached(text: str, *args: Any) -> T:
        if len(text) < _CACHE_MIN:
            return fn(text, *args)
        recent: list[tuple[str, tuple[Any, ...], T]] = local.__dict__.setdefault("recent", [])
        for seen, seen_args, result in recent:
            if seen is text and seen_args == args:
                return result
        result = fn(text, *args)
        recent.insert(0, (text, args, result))
        del recent[8:]
        return result

    return cached


def compile(
    pattern: str, flags: int = 0, *, before: str | None = None, after: str | None = None, alt: str | None = None
) -> Pattern:
    """A linear-time pattern. `before`: a one-character class that must precede a match unless it starts the
    text (a lookbehind such as (?<![\\w.,]) or \\b before a word is before="[^\\w.,]" / "[^\\w]"); `after`:
    what must follow a match, not part of it (a lookahead; "X|$" for a negative one that the end satisfies);
    `alt`: alternatives without that context, tried after `pattern` at the same start."""
    return Pattern(pattern, flags, before=before, after=after, alt=alt)


def escape(text: str) -> str:
    """`text` as a literal in a pattern."""
    return "".join(c if c.isalnum() or c == "_" else f"\\x{{{ord(c):x}}}" for c in text)
