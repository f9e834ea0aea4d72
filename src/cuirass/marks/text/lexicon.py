"""Substitution classes: sets of interchangeable ways to write the same thing, and where they apply.

A class has k variants (e.g. "do not" / "don't"). Inflected families share one class with one
form per inflection ("ensure that" / "make sure that", "ensures that" / "makes sure that"), so a
text stays consistent across inflections. A guard restricts a class to contexts where every
variant is correct; it looks only at the neighbouring words, which the watermark does not change,
so the same places are found before and after watermarking.

Stability rule (old watermarks must stay detectable): never rename a class id nor reorder its
variants. Adding classes, forms or guards is safe.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable

from cuirass import linear

_MEMBER_PART = linear.compile(r"[A-Za-z']+|[ -]")


@dataclasses.dataclass(frozen=True, slots=True)
class Around:
    """What surrounds a candidate match; what guards look at.

    A neighbour that may itself be a choice point is seen as the set of all the ways it could be
    written (e.g. {"a", "various", "different"} before "variety of ..."), and a guard must hold for
    all of them: so rewriting a neighbour never changes whether this place is a choice point.
    """

    prev: frozenset[str]  # previous word (one space before the match), lower case; empty if none
    prev_char: str  # the last non-space character before the match ("" at the start)
    next: frozenset[str]  # following word (one space between), "#" for a number, or the punctuation right after
    next_is_word: bool
    sentence_start: bool  # starts a sentence, a line or a list item, and is capitalised


def _bases(words: frozenset[str]) -> set[str]:
    return {w.split("'")[0] for w in words}


@dataclasses.dataclass(frozen=True, slots=True)
class Guard:
    start: bool | None = None  # True: only sentence-initial; False: never sentence-initial
    prev_in: frozenset[str] | None = None
    prev_not: frozenset[str] = frozenset()
    prev_char: str | None = None
    next_in: frozenset[str] | None = None
    next_not: frozenset[str] = frozenset()  # also matched against the part before an apostrophe
    next_word: bool = False  # a word must follow (e.g. no contraction may end a clause)
    test: Callable[[Around], bool] | None = None

    def allows(self, a: Around) -> bool:
        if self.start is not None and a.sentence_start != self.start:
            return False
        if self.prev_char is not None and a.prev_char != self.prev_char:
            return False
        if self.prev_in is not None and not (a.prev and a.prev <= self.prev_in):
            return False
        if a.prev & self.prev_not:
            return False
        if self.next_word and not a.next_is_word:
            return False
        if self.next_in is not None and not (a.next and a.next <= self.next_in):
            return False
        if a.next & self.next_not or _bases(a.next) & self.next_not:
            return False
        return self.test is None or self.test(a)


ANYWHERE = Guard()


@dataclasses.dataclass(frozen=True, slots=True)
class WordClass:
    """One choice: `forms[f][v]` is variant v of inflection f, as written in lower case."""

    id: str  # hashed into every window: stable forever
    group: str  # contraction, connective, adverb, adjective, verb, phrase, spelling, hyphen, relative
    forms: tuple[tuple[str, ...], ...]
    guard: Guard = ANYWHERE
    contextual: bool = True  # False: one window per text (e.g. a spelling stays consistent)

    @property
    def k(self) -> int:
        return len(self.forms[0])


@dataclasses.dataclass(frozen=True, slots=True)
class Member:
    """One surface string of a class, split into words and the separators (" " or "-") between them."""

    words: tuple[str, ...]
    seps: tuple[str, ...]
    cls: WordClass
    form: int
    variant: int


def split_member(surface: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    parts = _MEMBER_PART.findall(surface)
    return tuple(parts[0::2]), tuple(parts[1::2])


def klass(
    group: str, *forms: str, guard: Guard = ANYWHERE, contextual: bool = True, id: str | None = None
) -> WordClass:
    """A class from forms written as "variant / variant / ..." (one string per inflection)."""
    parsed = tuple(tuple(v.strip() for v in f.split("/")) for f in forms)
    if len({len(f) for f in parsed}) != 1 or len(parsed[0]) < 2:
        raise ValueError(f"class {forms[0]!r}: every form needs the same number (>= 2) of variants")
    return WordClass(id or f"{group}:{parsed[0][0]}", group, parsed, guard, contextual)


class Lexicon:
    """All classes, indexed by the first word of every member (longest first, then in listed order).

    A surface may belong to several classes whose guards exclude each other ("such as" after a comma
    and after a plural noun): the first class whose guard allows the place wins.
    """

    def __init__(self, classes: Iterable[WordClass]) -> None:
        self.classes = tuple(classes)
        self.by_first: dict[str, list[Member]] = {}
        self.by_last: dict[str, list[Member]] = {}
        ids: set[str] = set()
        for c in self.classes:
            if c.id in ids:
                raise ValueError(f"duplicate class id {c.id!r}")
            ids.add(c.id)
            surfaces = [s.lower() for form in c.forms for s in form]
            if len(set(surfaces)) != len(surfaces):
                raise ValueError(f"class {c.id!r} lists a surface twice")
            for f, form in enumerate(c.forms):
                for v, surface in enumerate(form):
                    words, seps = split_member(surface)
                    member = Member(words, seps, c, f, v)
                    self.by_first.setdefault(words[0].lower(), []).append(member)
                    self.by_last.setdefault(words[-1].lower(), []).append(member)
        for members in self.by_first.values():
            members.sort(key=lambda m: -len(m.words))

    def first_words(self, member: Member) -> frozenset[str]:
        """How every variant of the member's class (same inflection) begins."""
        return frozenset(split_member(s)[0][0].lower() for s in member.cls.forms[member.form])

    def last_words(self, member: Member) -> frozenset[str]:
        return frozenset(split_member(s)[0][-1].lower() for s in member.cls.forms[member.form])

    def groups(self) -> set[str]:
        return {c.group for c in self.classes}
