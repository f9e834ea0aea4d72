"""Markdown lists as choice points: the marker ("- item" or "* item", "1. step" or "1) step") and, in
lists of one-line items, a full stop at the end of every item or of none.

Markdown renders both markers of each pair the same way (CommonMark; renderers that know only "1."
show "1) step" as plain text, which reads the same), and style guides accept list items with or
without a final full stop as long as a list is consistent. One list is one choice of each kind: every
item moves together (a change of marker mid-list would start a new list). A list is a run of item
lines with the same indentation, with only blank lines and deeper-indented lines (nested items,
continuations) between them; the run is found from line starts and indentation alone, so it is the
same before and after watermarking. Left alone: "+" bullets, thematic breaks ("* * *"), items that
look like YAML ("- name: value"), anything inside code or another protected span; and, for the full
stop, lists with nested or continued items, items of several sentences, and items that end in
anything but a word ("etc." keeps its stop).
"""

from __future__ import annotations

import dataclasses

from cuirass import linear

GROUP = "markdown"
BULLET, ORDERED, PERIOD = "bullet", "ordered", "period"
SURFACES = {BULLET: ("-", "*"), ORDERED: (".", ")"), PERIOD: ("", ".")}

_ITEM = linear.compile(r"^([ \t]*)(?:([-*])|\d{1,9}([.)]))[ \t]+(\S.*)$")
_RULE = linear.compile(r"^[ \t]*[-*_]([ \t]*[-*_]){2,}[ \t]*$")
_YAML_KEY = linear.compile(r"^[a-z_][\w-]*:(?:\s|$)")
_LAST_WORD = linear.compile(r"(?:^|[\s(\"“*_-])([A-Za-z]+(?:['’][A-Za-z]+)*)$")  # "-": "up-to-date" or "up to date"
_SENTENCE_BREAK = linear.compile(r"[.!?]\s+\S")
_ABBREVIATIONS = frozenset("etc eg ie vs inc ltd co corp jr sr dr mr mrs ms st no approx dept est fig misc".split())


@dataclasses.dataclass(slots=True)
class MarkdownList:
    kind: str
    markers: list[tuple[int, int]] = dataclasses.field(default_factory=list)  # (offset, variant) per item
    ends: list[tuple[int, bool]] = dataclasses.field(default_factory=list)  # (where a stop goes, stop present)
    simple: bool = True  # every item one line of one sentence, ending in a word


def _item_end(rest_start: int, rest: str) -> tuple[int, bool] | None:
    """(offset after the item's last word, full stop present) if the item may take or drop its stop.

    `rest` is the item's text after its marker, starting at character offset `rest_start`.
    """
    body = rest.rstrip()
    stop = body.endswith(".") and not body.endswith("..")
    if stop:
        body = body[:-1]
    last = _LAST_WORD.search(body)
    if last is None or _SENTENCE_BREAK.search(body):
        return None
    if last.group(1).lower() in _ABBREVIATIONS or len(last.group(1)) < 2:
        return None
    return rest_start + len(body), stop


def _dedent(open_lists: dict[tuple[str, str], MarkdownList], width: int, keep: tuple[str, str] | None = None) -> None:
    """A line indented by `width`: lists indented less go on (with a nested or continued item, so they
    are no longer simple); the others end, except `keep` (the list this line is an item of)."""
    for k, lst in list(open_lists.items()):
        if width > len(k[0]):
            lst.simple = False
        elif k != keep:
            del open_lists[k]


def lists(text: str) -> list[MarkdownList]:
    """Every list of the text, in order (also those inside code: choices.py skips protected spans)."""
    lists: list[MarkdownList] = []
    open_lists: dict[tuple[str, str], MarkdownList] = {}  # (indent, kind) -> the list, while it runs
    pos = 0
    for line in text.split("\n"):
        first = line.lstrip(" \t")[:1]  # an item or a rule starts with one of these: skip the patterns otherwise
        m = _ITEM.match(line) if (first in ("-", "*", "_") or first.isdecimal()) and not _RULE.match(line) else None
        if m is None:
            if line.strip():
                _dedent(open_lists, len(line) - len(line.lstrip(" \t")))
        else:
            indent, bullet, delim, rest = m.groups()
            kind = BULLET if bullet else ORDERED
            _dedent(open_lists, len(indent), keep=(indent, kind))
            lst = open_lists.get((indent, kind))
            if lst is None:
                lst = open_lists[(indent, kind)] = MarkdownList(kind)
                lists.append(lst)
            if _YAML_KEY.match(rest):
                lst.simple = False
            else:
                lst.markers.append(
                    (pos + (m.start(2) if bullet else m.start(3)), SURFACES[kind].index(bullet or delim))
                )
            end = _item_end(pos + m.start(4), rest)
            if end is None:
                lst.simple = False
            else:
                lst.ends.append(end)
        pos += len(line) + 1
    return lists


def list_markers(found: list[MarkdownList]) -> dict[int, tuple[int, str, int]]:
    """Character offset of each marker (the bullet, or the "."/")" after the number) -> (list, kind, variant).

    `list` numbers the lists of the text in order; all markers of one list share it.
    """
    return {offset: (n, lst.kind, variant) for n, lst in enumerate(found) for offset, variant in lst.markers}


def item_stops(found: list[MarkdownList]) -> dict[int, tuple[int, bool]]:
    """Offset right after the last word of each item of a simple list of >= 2 items -> (list, stop present)."""
    return {
        offset: (n, stop)
        for n, lst in enumerate(found)
        if lst.simple and len(lst.ends) >= 2
        for offset, stop in lst.ends
    }
