"""List markers as choice points: "- item" or "* item", "1. step" or "1) step".

Markdown renders both variants of each pair the same way (CommonMark; renderers that know only
"1." show "1) step" as plain text, which reads the same). One list is one choice: every item of a
list moves together, since a change of marker mid-list would start a new list. A list is a run of
item lines with the same indentation, with only blank lines and deeper-indented lines (nested items,
continuations) between them; the run is found from line starts and indentation alone, so it is the
same before and after watermarking. Left alone: "+" bullets, thematic breaks ("* * *"), items that
look like YAML ("- name: value"), and anything inside code or another protected span.
"""

from __future__ import annotations

import re

GROUP = "markdown"
BULLET, ORDERED = "bullet", "ordered"
SURFACES = {BULLET: ("-", "*"), ORDERED: (".", ")")}

_ITEM = re.compile(r"^([ \t]*)(?:([-*])|\d{1,9}([.)]))[ \t]+(\S.*)$")
_RULE = re.compile(r"^[ \t]*[-*_]([ \t]*[-*_]){2,}[ \t]*$")
_YAML_KEY = re.compile(r"^[a-z_][\w-]*:(?:\s|$)")


def list_markers(text: str) -> dict[int, tuple[int, str, int]]:
    """Character offset of each marker (the bullet, or the "."/")" after the number) -> (list, kind, variant).

    `list` numbers the lists of the text in order; all markers of one list share it.
    """
    out: dict[int, tuple[int, str, int]] = {}
    open_lists: dict[tuple[str, str], int] = {}  # (indent, kind) -> list number, while the list runs
    n, pos = 0, 0
    for line in text.split("\n"):
        m = _ITEM.match(line) if not _RULE.match(line) else None
        if m is None:
            if line.strip():
                width = len(line) - len(line.lstrip(" \t"))
                open_lists = {k: v for k, v in open_lists.items() if width > len(k[0])}
        else:
            indent, bullet, delim, rest = m.groups()
            kind = BULLET if bullet else ORDERED
            open_lists = {k: v for k, v in open_lists.items() if len(indent) > len(k[0]) or k == (indent, kind)}
            if (indent, kind) not in open_lists:
                open_lists[(indent, kind)] = n
                n += 1
            mark = bullet or delim
            if not _YAML_KEY.match(rest):
                offset = pos + (m.start(2) if bullet else m.start(3))
                out[offset] = (open_lists[(indent, kind)], kind, SURFACES[kind].index(mark))
        pos += len(line) + 1
    return out
