"""Optional extra channel: an invisible WORD JOINER (U+2060) after some sentence ends.

Off by default and never the only channel: any tokenizer or cleaning pipeline may strip format
characters, after which these units read as coin flips (the p-value stays exact, only weaker).
A reader sees nothing. Each sentence end ("." "!" "?" then a space and a capitalised word) is a
binary choice point: joiner or not. Texts written without the key carry no joiners, so the null
is exactly as for the lexical choices (keyed.py).
"""

from __future__ import annotations

from cuirass.marks.text.segment import PUNCT, WORD, Token

GROUP = "invisible"
JOINER = "\u2060"


def sentence_ends(tokens: list[Token]) -> list[tuple[int, bool]]:
    """(character offset right after the sentence-final mark, joiner present) for every sentence end."""
    out = []
    for i, tok in enumerate(tokens):
        if tok.kind != PUNCT or tok.text not in ".!?" or i == 0 or tokens[i - 1].kind != WORD:
            continue
        j, joined = i + 1, False
        if j < len(tokens) and tokens[j].text == JOINER:
            j, joined = j + 1, True
        if (
            j + 1 < len(tokens)
            and tokens[j].text == " "
            and tokens[j + 1].kind == WORD
            and tokens[j + 1].text[0].isupper()
        ):
            out.append((tok.end, joined))
    return out
