"""Optional function words as substitution classes: "think that it" / "think it", "help to reduce" /
"help reduce", "based on" / "based upon" (data only; see lexicon.py for what a class is).

Each class is a word that English lets a writer include or leave out (or lengthen) without changing
the meaning, in a context narrow enough that both variants are always grammatical: the complementizer
"that" only before a subject pronoun (where the clause cannot be read as an object), "to" after "help"
only before a bare verb from a fixed list, "upon" only in fixed verb-preposition pairs. A reader sees
ordinary, slightly more or less formal English.
"""

from __future__ import annotations

from cuirass.marks.text.lexicon import Around, Guard, WordClass, klass

_PRONOUNS = frozenset("i you we they he she it there".split())
# verbs whose clause object may drop "that" when a subject pronoun follows (not "know", "believe",
# "feel", "see", "find": "I know it" / "I believe you" read as objects)
_THAT_VERBS = (
    "think",
    "thinks",
    "hope",
    "hopes",
    "means",
    "suggests",
    "suggest",
    "recommend",
    "recommends",
    "assume",
    "assumes",
    "indicates",
)
# bare verbs after which "help" / "help to" are interchangeable (every variant of a neighbouring
# choice point listed too, e.g. "improve" / "enhance")
_HELP_VERBS = frozenset(
    "improve enhance reduce decrease increase boost ensure prevent protect keep manage make develop maintain achieve "
    "attain promote support attract establish streamline drive provide offer determine identify minimize minimise "
    "optimize optimise save avoid alleviate solve create build lower strengthen foster bridge guide shape speed "
    "simplify clarify address overcome mitigate prepare generate encourage motivate facilitate".split()
)


def _pronoun_next(a: Around) -> bool:
    return a.next_is_word and bool(a.next) and all(n.split("'")[0] in _PRONOUNS for n in a.next)


def _pronoun_next_not_it(a: Around) -> bool:
    """After "think", "it" may be an object ("think it through"): only other pronouns."""
    return _pronoun_next(a) and not any(n.split("'")[0] == "it" for n in a.next)


def optional_words() -> list[WordClass]:
    """The classes of this module."""
    out = [
        klass(
            "phrase",
            f"{v} that / {v}",
            guard=Guard(test=_pronoun_next_not_it if v.startswith("think") else _pronoun_next),
        )
        for v in _THAT_VERBS
    ]
    out.append(
        klass(
            "phrase",
            "help to / help",
            "helps to / helps",
            "helping to / helping",
            "helped to / helped",
            guard=Guard(
                prev_not=frozenset({"it", "a", "the", "of", "for", "with", "your", "any"}), next_in=_HELP_VERBS
            ),
        )
    )
    out += [
        klass("phrase", "based on / based upon"),
        klass(
            "phrase",
            "depend on / depend upon",
            "depends on / depends upon",
            "depending on / depending upon",
            "depended on / depended upon",
        ),
        klass(
            "phrase",
            "rely on / rely upon",
            "relies on / relies upon",
            "relying on / relying upon",
            "relied on / relied upon",
        ),
    ]
    return out
