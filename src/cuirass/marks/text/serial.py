"""The serial (Oxford) comma as a choice point: "A, B, and C" versus "A, B and C".

Both are correct English. The place must be recognisable with or without the comma, so it is
defined by the rest of the list: a conjunction ("and"/"or") after a short item that follows a
comma, and before that either another comma-separated item (four or more items in all) or an
introducing word ("such as", "including", "are", ...) shortly before the first comma. A bare
"However, you and I" is never touched. Other choice points inside the items count as one word
each, so rewriting them ("such as" / "including") cannot change what is seen as a list.
"""

from __future__ import annotations

from cuirass.marks.text.segment import WORD, Token

GROUP = "punctuation"
MAX_ITEM_WORDS = 4
INTRO = frozenset("including include includes included like namely especially particularly are were is was".split())
STOP = frozenset(
    "which who whom whose where when while although though because if since that unless whereas and or but".split()
)


def _is(units: list[Token], i: int, text: str) -> bool:
    return 0 <= i < len(units) and units[i].text == text


def _item_back(units: list[Token], k: int) -> tuple[list[str], bool, int]:
    """Words of the item ending at unit k (nearest first), whether ", " precedes it, and that comma's index."""
    words: list[str] = []
    while 0 <= k < len(units) and units[k].kind == WORD and len(words) <= MAX_ITEM_WORDS:
        words.append(units[k].norm)
        if _is(units, k - 1, " ") and _is(units, k - 2, ","):
            return words, True, k - 2
        if (_is(units, k - 1, " ") or _is(units, k - 1, "-")) and k - 2 >= 0 and units[k - 2].kind == WORD:
            k -= 2
            continue
        break
    return words, False, -1


def _introduced(words: list[str]) -> bool:
    """An introducing word with 1..3 words after it, just before the first comma ("such as X, ...")."""
    for m in range(1, min(len(words), 4)):
        w = words[m]
        if w in INTRO or w.startswith("connective:such as") or (w == "as" and words[m + 1 : m + 2] == ["such"]):
            return True
    return False


def _item_ok(words: list[str]) -> bool:
    """A plausible list item: short, not a clause, and not itself where a list starts ("such as A")."""
    return (
        0 < len(words) <= MAX_ITEM_WORDS
        and words[-1] not in STOP
        and "and" not in words
        and "or" not in words
        and not any(w in INTRO or w == "as" or w.startswith("connective:") for w in words)
    )


def serial_gaps(
    tokens: list[Token], matches: dict[int, tuple[int, str]], skip: frozenset[int] = frozenset()
) -> list[tuple[int, int, bool]]:
    """(gap start char, conjunction start char, has comma) for every list-final "and"/"or".

    `matches` maps the first token of every other choice point to (end token, class id); commas
    starting at a char offset in `skip` are read as absent (they are choice points themselves).
    """
    units: list[Token] = []
    i = 0
    while i < len(tokens):
        if tokens[i].start in skip and tokens[i].text == ",":
            i += 1
        elif i in matches:
            end, cls = matches[i]
            units.append(Token(WORD, cls, tokens[i].start, tokens[end - 1].end))
            i = end
        else:
            units.append(tokens[i])
            i += 1
    out = []
    for i, u in enumerate(units):
        if u.kind != WORD or u.text not in ("and", "or") or not _is(units, i - 1, " "):
            continue
        if not (_is(units, i + 1, " ") and i + 2 < len(units) and units[i + 2].kind == WORD):
            continue
        comma = _is(units, i - 2, ",")
        gap = i - 2 if comma else i - 1
        last, boundary, c = _item_back(units, gap - 1)
        if not boundary or not _item_ok(last):
            continue
        middles = 0
        while True:
            words, boundary, c2 = _item_back(units, c - 1)
            if boundary and _item_ok(words):
                middles, c = middles + 1, c2
                continue
            if words and (middles >= 1 or _introduced(words)):
                out.append((units[gap].start, u.start, comma))
            break
    return out
