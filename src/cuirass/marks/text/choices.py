"""Find the choice points of a text: every place where it uses one variant of a substitution class.

The same places, with the same windows, are found in a text before and after watermarking: a
match depends only on the member words and on guards that see a neighbouring choice point as the
set of all its variants (lexicon.Around), and the context of a window is made of words that are
not themselves choice points. tests/respond/test_watermark.py checks this on real answers.

A window is `class id | context`: the unit the keyed function sees. For most classes the context
is the two previous words that are not choice points (so windows rarely recur across answers, and
per-answer p-values under one key behave independently); for spellings and hyphens it is empty,
so a text spells a word one way throughout.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

from cuirass.marks.text import intro, invisible, markdown, serial
from cuirass.marks.text.lexicon import Around, Guard, Lexicon, Member
from cuirass.marks.text.segment import NEWLINE, PUNCT, SPACE, WORD, Token, tokenize
from cuirass.marks.text.vocab import LEXICON

_GLUED_BEFORE = set("-_/\\.@#$%&+=<>~^|'’`")  # a word touching one of these is part of something else
_GLUED_AFTER = set("-_/\\@#$%&+=<>~^|(`")
_SKIP_AT_START = set(" \t*_#>-+(\u2060")  # markdown markers (and our joiner) before a sentence's first word
DEFAULT_GROUPS = frozenset(
    {
        "contraction",
        "connective",
        "phrase",
        "adverb",
        "adjective",
        "verb",
        "noun",
        "relative",
        "spelling",
        "hyphen",
        serial.GROUP,
        markdown.GROUP,
    }
)
ALL_GROUPS = DEFAULT_GROUPS | {invisible.GROUP}


@dataclasses.dataclass(frozen=True, slots=True)
class Choice:
    """One choice point: where, which class, which variant the text uses, and how each would read."""

    window: str  # "class id|context": hashed with the key; repeated windows count once
    k: int  # number of variants
    variant: int  # the variant the text uses here
    start: int
    end: int
    surfaces: tuple[str, ...]  # each variant as it would be written here (case, apostrophes)
    article: tuple[int, int] | None = None  # span of a preceding "a"/"an" that must agree with the variant


def _sentence_start(text: str, pos: int) -> bool:
    j = pos - 1
    while j >= 0 and text[j] in _SKIP_AT_START:
        j -= 1
    if j < 0 or text[j] in "\n.!?:":
        return True
    if text[j] == ")":  # "1) " and "a) " list markers
        j -= 1
        while j >= 0 and text[j].isalnum():
            j -= 1
        return j < 0 or text[j] in " \t\n"
    return False


def _sees_stop(g: Guard) -> bool:
    """Whether a guard may decide differently before "." than before the end of a line."""
    return g.test is not None or "." in (g.next_in or ()) or "." in g.next_not


def wants_an(word: str) -> bool:
    """Whether "an" (not "a") goes before `word` (enough for the words of the lexicon)."""
    w = word.lower()
    if w.startswith(("hour", "honest", "honor", "honour", "heir")):
        return True
    if w.startswith(("us", "uni", "uti", "ur", "eu", "one")):
        return False
    return w[:1] in "aeiou"


class Finder:
    """Finds choice points with one lexicon; holds nothing per text."""

    def __init__(self, lexicon: Lexicon = LEXICON, groups: frozenset[str] = DEFAULT_GROUPS) -> None:
        self.lexicon = lexicon
        self.groups = groups

    def choices(self, text: str) -> list[Choice]:
        tokens = tokenize(text)
        curly = text.count("’") > text.count("'")
        openings = self._openings(text, tokens) if intro.GROUP in self.groups else {}
        after_comma = {subject for _, _, _, subject in openings.values()}
        found: list[tuple[int, int, Member, Around]] = []  # (first token, end token, member, surroundings)
        i = 0
        while i < len(tokens):
            hit = self._match(text, tokens, i, i in after_comma) if tokens[i].kind == WORD else None
            if hit is None:
                i += 1
                continue
            found.append(hit)
            i = hit[1]
        starts = {hit[0]: hit for hit in found}
        covered = {j for first, end, _, _ in found for j in range(first, end)}
        gaps = {}
        if serial.GROUP in self.groups:
            spans = {first: (end, m.cls.id) for first, end, m, _ in found}
            optional = frozenset(gap for _, comma, gap, _ in openings.values() if comma)
            gaps = {g: (conj, comma) for g, conj, comma in serial.serial_gaps(tokens, spans, optional)}
        ends = dict(invisible.sentence_ends(tokens)) if invisible.GROUP in self.groups else {}
        found_lists = markdown.lists(text) if markdown.GROUP in self.groups else []
        markers, stops = markdown.list_markers(found_lists), self._stops(tokens, found_lists)
        list_context: dict[int, str] = {}  # list number -> context at its first item
        out: list[Choice] = []
        before, last = "^", "^"  # context: the two previous words that are not part of a choice point
        for idx, tok in enumerate(tokens):
            if idx in openings:
                phrase, comma, gap, _ = openings[idx]
                window = f"{intro.GROUP}:intro {phrase}|{before} {last}"
                out.append(Choice(window, 2, int(comma), gap, gap + comma, ("", ",")))
            if idx in starts:
                first, end, m, _ = starts[idx]
                out.append(self._choice(text, tokens, first, end, m, f"{before} {last}", curly))
            elif tok.start in gaps and idx not in covered:
                conj, comma = gaps[tok.start]
                window = f"{serial.GROUP}:serial {text[conj : conj + 3].strip()}|{before} {last}"
                out.append(Choice(window, 2, int(comma), tok.start, conj, (" ", ", ")))
            elif tok.end in ends and tok.text in ".!?":
                joined = ends[tok.end]
                window = f"{invisible.GROUP}:joiner|{before} {last}"
                out.append(Choice(window, 2, int(joined), tok.end, tok.end + joined, ("", invisible.JOINER)))
            elif tok.start in markers and tok.kind == PUNCT:
                n, kind, variant = markers[tok.start]
                context = list_context.setdefault(n, f"{before} {last}")
                window = f"{markdown.GROUP}:{kind}|{context}"
                out.append(Choice(window, 2, variant, tok.start, tok.end, markdown.SURFACES[kind]))
            elif tok.kind == WORD and idx not in covered:
                before, last = last, "a" if tok.norm == "an" else tok.norm
            if idx in stops:
                n, stop = stops[idx]
                window = f"{markdown.GROUP}:{markdown.PERIOD}|{list_context.setdefault(n, f'{before} {last}')}"
                out.append(Choice(window, 2, int(stop), tok.end, tok.end + stop, markdown.SURFACES[markdown.PERIOD]))
        return out

    def _openings(self, text: str, tokens: list[Token]) -> dict[int, tuple[str, bool, int, int]]:
        """First token of every opening phrase -> (phrase, comma present, where the comma goes, subject token).

        The phrase may not be part of a substitution class (a guard would see the comma after it), and
        every class that starts with the subject must start with a subject in all its variants (so the
        subject stays one). Guards at the subject see the comma whether or not it is there (_around).
        """
        out = {}
        for i, tok in enumerate(tokens):
            if (
                tok.kind != WORD
                or tok.norm not in intro.FIRST_WORDS
                or not tok.text[0].isupper()
                or not _sentence_start(text, tok.start)
            ):
                continue
            hit = intro.opening_phrases(tokens, i)
            if hit is None:
                continue
            words, end, comma = hit
            subject = end + 1 + comma
            if not self._stays_subject(tokens[subject].norm) or any(
                self._spelled_at(tokens, j) or self._spelled_to(tokens, j) for j in range(i, end, 2)
            ):
                continue
            out[i] = (" ".join(words), comma, tokens[end - 1].end, subject)
        return out

    def _stops(self, tokens: list[Token], found: list[markdown.MarkdownList]) -> dict[int, tuple[int, bool]]:
        """Last word token of every item of a list that may take or drop its full stops -> (list, stop present).

        A list is left out whole if an item's last word is not a prose word (code, a URL) or ends a
        member of a substitution class whose guard could tell a full stop from a line end.
        """
        candidates = markdown.item_stops(found)
        if not candidates:
            return {}
        words = {t.end: i for i, t in enumerate(tokens) if t.kind == WORD}
        by_list: dict[int, list[tuple[int, bool]]] = {}
        bad: set[int] = set()
        for offset, (n, stop) in candidates.items():
            i = words.get(offset)
            if i is None or any(_sees_stop(m.cls.guard) for m in self._spelled_to(tokens, i)):
                bad.add(n)
            else:
                by_list.setdefault(n, []).append((i, stop))
        return {i: (n, stop) for n, items in by_list.items() if n not in bad for i, stop in items}

    def _stays_subject(self, word: str) -> bool:
        return all(
            w.split("'")[0] in intro.SUBJECTS
            for m in self.lexicon.by_first.get(word, ())
            for w in self.lexicon.first_words(m)
        )

    def _match(
        self, text: str, tokens: list[Token], i: int, after_comma: bool = False
    ) -> tuple[int, int, Member, Around] | None:
        tok = tokens[i]
        if tok.start > 0 and (text[tok.start - 1] in _GLUED_BEFORE or text[tok.start - 1].isalnum()):
            return None
        for m in self.lexicon.by_first.get(tok.norm, ()):
            if m.cls.group not in self.groups:
                continue
            end = self._spell(tokens, i, m)
            if end is None:
                continue
            after = tokens[end - 1].end
            if after < len(text) and (
                text[after] in _GLUED_AFTER
                or text[after].isalnum()
                or (text[after] == "." and after + 1 < len(text) and text[after + 1].isalnum())
            ):
                continue
            around = self._around(text, tokens, i, end, after_comma)
            canonical = m.words[0]
            if tok.text[0].isupper() and not canonical[0].isupper() and not around.sentence_start:
                continue  # a capitalised word mid-sentence is a name or a title
            if m.cls.guard.allows(around):
                return i, end, m, around
        return None

    @staticmethod
    def _spell(tokens: list[Token], i: int, m: Member) -> int | None:
        """Index after the member if the tokens from i spell it, else None."""
        j = i
        for n, word in enumerate(m.words):
            if j >= len(tokens) or tokens[j].kind != WORD or tokens[j].norm != word.lower():
                return None
            t = tokens[j].text.replace("’", "'")
            if not (t == word or t == word.lower() or (n == 0 and t == word[:1].upper() + word[1:].lower())):
                return None  # e.g. "SELECT" or "useState": code or an acronym, not prose
            j += 1
            if n < len(m.seps):
                if j >= len(tokens) or tokens[j].text != m.seps[n]:
                    return None
                j += 1
        return j

    def _spelled_at(self, tokens: list[Token], i: int) -> list[Member]:
        """Every member (any class, guards ignored) that the tokens from i spell."""
        return [m for m in self.lexicon.by_first.get(tokens[i].norm, ()) if self._spell(tokens, i, m) is not None]

    def _spelled_to(self, tokens: list[Token], i: int) -> list[Member]:
        """Every member (guards ignored) that ends with token i."""
        out = []
        for m in self.lexicon.by_last.get(tokens[i].norm, ()):
            first = i - 2 * (len(m.words) - 1)
            if first >= 0 and self._spell(tokens, first, m) == i + 1:
                out.append(m)
        return out

    def _around(self, text: str, tokens: list[Token], i: int, end: int, after_comma: bool = False) -> Around:
        """What guards see around tokens[i:end]; `after_comma`: as if a comma came right before."""
        prev: frozenset[str] = frozenset()
        if not after_comma and i >= 2 and tokens[i - 1].text == " " and tokens[i - 2].kind == WORD:
            ways = self._spelled_to(tokens, i - 2)
            prev = (
                frozenset().union(*(self.lexicon.last_words(m) for m in ways))
                if ways
                else frozenset({tokens[i - 2].norm})
            )
            prev = frozenset("a" if p == "an" else p for p in prev)
        j = tokens[i].start - 1
        while j >= 0 and text[j] in " \t\u2060":
            j -= 1
        prev_char = "," if after_comma else text[j] if j >= 0 else ""
        nxt: frozenset[str] = frozenset()
        is_word = False
        if end < len(tokens):
            t = tokens[end]
            after = tokens[end + 1] if end + 1 < len(tokens) else None
            if t.text == " " and after is not None and after.kind == WORD:
                ways = self._spelled_at(tokens, end + 1)
                nxt = (
                    frozenset().union(*(self.lexicon.first_words(m) for m in ways)) if ways else frozenset({after.norm})
                )
                is_word = True
            elif t.text == " " and after is not None and after.text[:1] in "0123456789$€£":
                nxt = frozenset({"#"})
            elif t.kind not in (SPACE, NEWLINE, WORD) and len(t.text) == 1:
                nxt = frozenset({t.text})
        start = tokens[i].text[0].isupper() and _sentence_start(text, tokens[i].start)
        return Around(prev, prev_char, nxt, is_word, start)

    def _choice(
        self, text: str, tokens: list[Token], first: int, end: int, m: Member, context: str, curly: bool
    ) -> Choice:
        start, stop = tokens[first].start, tokens[end - 1].end
        original = text[start:stop]
        capital = original[0].isupper()
        quote = "’" if "’" in original else "'" if "'" in original else ("’" if curly else "'")
        surfaces = []
        for s in m.cls.forms[m.form]:
            if capital:
                s = s[0].upper() + s[1:]
            surfaces.append(s.replace("'", quote))
        article = None
        if first >= 2 and tokens[first - 1].text == " " and tokens[first - 2].norm in ("a", "an"):
            article = (tokens[first - 2].start, tokens[first - 2].end)
        window = f"{m.cls.id}|{context if m.cls.contextual else ''}"
        return Choice(window, m.cls.k, m.variant, start, stop, tuple(surfaces), article)


def iter_windows(choices: list[Choice]) -> Iterator[Choice]:
    """The first choice of every distinct window, in text order (repeated windows count once)."""
    seen: set[str] = set()
    for c in choices:
        if c.window not in seen:
            seen.add(c.window)
            yield c


def finder_for(exclude: list[str] | tuple[str, ...] = (), invisible: bool = False) -> Finder:
    """The choice-point finder for the watermark's options (`exclude`, `invisible`): embedding and
    detection must use the same one."""
    unknown = set(exclude) - DEFAULT_GROUPS
    if unknown:
        raise ValueError(f"unknown watermark groups {sorted(unknown)}; choose from {sorted(DEFAULT_GROUPS)}")
    groups = DEFAULT_GROUPS - set(exclude)
    return Finder(groups=groups | (ALL_GROUPS - DEFAULT_GROUPS) if invisible else groups)  # + the invisible group
