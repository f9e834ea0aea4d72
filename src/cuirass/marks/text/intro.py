"""The comma after a short opening phrase as a choice point: "In this case, you" or "In this case you".

Style guides leave that comma optional after a brief introductory phrase (The Chicago Manual of
Style, 6.36), so both variants are correct. The place must be recognisable with or without the comma,
so it is a fixed phrase that opens a sentence and is followed by a word that can only start a new
clause (a subject: "you", "the", "it's", ...). "In this case study, we" is not a place ("study" is no
subject), nor is anything whose words belong to a substitution class (choices.py checks that), nor
idioms that need their word order ("Here you go": "here" is not listed). Connectives that always take
their comma ("However,") are not listed either.
"""

from __future__ import annotations

from cuirass.marks.text.segment import WORD, Token

GROUP = "punctuation"

_NOUNS = (
    "example case code implementation article version chapter section scenario video guide tutorial program "
    "function script snippet way"
).split()
PHRASES = tuple(
    sorted(
        {
            tuple(p.split())
            for p in (
                [f"in this {n}" for n in _NOUNS]
                + [
                    "in this updated code",
                    "in this updated version",
                    "in this modified code",
                    "in that case",
                    "in such cases",
                    "in some cases",
                    "in most cases",
                    "in many cases",
                    "in your case",
                    "in the end",
                    "in practice",
                    "in the above code",
                    "in the code above",
                    "in the example above",
                    "in the above example",
                    "finally",
                    "now",
                    "so",
                    "today",
                    "eventually",
                    "sometimes",
                    "lastly",
                    "instead",
                    "otherwise",
                    "ultimately",
                    "unfortunately",
                    "alternatively",
                    "suddenly",
                    "one day",
                    "after that",
                    "from there",
                    "over time",
                    "by default",
                    "to do this",
                    "to fix this",
                    "to fix this error",
                    "to fix this issue",
                    "to resolve this issue",
                    "to achieve this",
                    "to solve this",
                    "to avoid this",
                    "with this",
                    "with these changes",
                    "with this approach",
                ]
            )
        },
        key=lambda p: (-len(p), p),
    )
)
FIRST_WORDS = frozenset(p[0] for p in PHRASES)
SUBJECTS = frozenset("you we i it the this they there he she our your its their my these those each all".split())


def _spells(tokens: list[Token], i: int, words: tuple[str, ...]) -> int | None:
    """Index after the phrase if the tokens from i spell it (single spaces between words), else None."""
    for n, w in enumerate(words):
        if i >= len(tokens) or tokens[i].kind != WORD or tokens[i].norm != w:
            return None
        i += 1
        if n < len(words) - 1:
            if i >= len(tokens) or tokens[i].text != " ":
                return None
            i += 1
    return i


def opening_phrases(tokens: list[Token], i: int) -> tuple[tuple[str, ...], int, bool] | None:
    """(phrase, index after it, comma present) if a listed phrase starts at token i and a subject follows."""
    for words in PHRASES:
        end = _spells(tokens, i, words)
        if end is None:
            continue
        comma = end < len(tokens) and tokens[end].text == ","
        j = end + 1 if comma else end
        if (
            j + 1 < len(tokens)
            and tokens[j].text == " "
            and tokens[j + 1].kind == WORD
            and tokens[j + 1].norm.split("'")[0] in SUBJECTS
        ):
            return words, end, comma
    return None
