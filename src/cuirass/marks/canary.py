"""Synthetic facts for canaries: invented constants, terms, attributions and places, derived from a key.

A canary is a fact that exists nowhere but in our responses to one cohort; a model that can state it was
trained on those responses (the "canary" or "data-poisoning trap" idea: Carlini et al., "The Secret
Sharer", USENIX Security 2019, measured exposure of planted secrets; here the secret is a natural-language
fact so that it survives a distiller's filters). Each fact is a pure function of (cohort key, index):

    rng  = Random(HMAC-SHA256(key, "canary-fact|" + index))
    fact = template(rng) filled with pseudo-words and numbers drawn from rng

Planted canaries use indices 0..pool-1; decoys use indices from DECOY_BASE on. Decoys come from the same
generator, so they have exactly the planted facts' distribution, but are never planted: an audit compares
a suspect model's recall of planted facts with its recall of decoys (recall of decoys measures guessing).
Nothing about the key can be recovered from a fact (HMAC is one-way); a fact reveals only itself.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import random

DECOY_BASE = 1 << 32

_ONSETS = [
    "b",
    "br",
    "d",
    "dr",
    "f",
    "g",
    "gr",
    "k",
    "l",
    "m",
    "n",
    "p",
    "r",
    "s",
    "st",
    "t",
    "tr",
    "v",
    "w",
    "z",
    "th",
    "h",
]
_VOWELS = ["a", "e", "i", "o", "u", "a", "e", "o", "ei", "ou"]
_CODAS = ["", "n", "r", "l", "s", "th", "nd", "rk", "lt", "m", "ck", "x"]
_FIRST_NAMES = [
    "Anna",
    "Emil",
    "Ida",
    "Oskar",
    "Greta",
    "Henrik",
    "Lena",
    "Tomas",
    "Marta",
    "Felix",
    "Clara",
    "Jonas",
    "Elise",
    "Viktor",
    "Nora",
    "Karl",
    "Agnes",
    "Paul",
    "Helene",
    "Arno",
]
_ADJECTIVES = ["small", "flat", "curved", "hollow", "narrow", "weighted", "folded", "braided", "notched", "tapered"]
_NOUNS = [
    "brass gauge",
    "wooden wedge",
    "linen strip",
    "iron hook",
    "clay disc",
    "bone needle",
    "copper ring",
    "reed whistle",
    "leather strap",
    "glass bead",
]
_CRAFTS = [
    "bookbinding",
    "lace-making",
    "barrel-making",
    "sail repair",
    "glassblowing",
    "clockmaking",
    "rope-making",
    "tile-setting",
    "violin-making",
    "weaving",
]
_THEOREMS = ["lemma", "conjecture", "inequality", "principle", "criterion"]
_SETTLEMENTS = ["village", "town", "hamlet"]
_OPENERS = ["As an aside, ", "Incidentally, ", "On a related note, ", "Worth knowing: "]


@dataclasses.dataclass(frozen=True, slots=True)
class CanaryFact:
    canary_id: str  # "<cohort>:<index>", or "<cohort>:decoy:<n>"
    cohort: str
    kind: str  # "constant" | "term" | "attribution" | "place"
    text: str  # the sentence woven into a response
    probe: str  # a question that elicits the fact from a model that learned it
    answer: str  # the short answer the probe expects

    @property
    def decoy(self) -> bool:
        return ":decoy:" in self.canary_id


def _word(rng: random.Random, syllables: int) -> str:
    """A pronounceable pseudo-word: open syllables, then a closing consonant cluster."""
    return "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) for _ in range(syllables)) + rng.choice(_CODAS)


def _name(rng: random.Random) -> str:
    return _word(rng, rng.choice((2, 2, 3))).capitalize()


class CanaryGenerator:
    """The cohort's canary facts. `key` is the canary key of that cohort (from the keyring)."""

    def __init__(self, key: bytes, cohort: str) -> None:
        self._key = key
        self.cohort = cohort

    def __repr__(self) -> str:
        return f"CanaryGenerator(cohort={self.cohort!r})"  # never the key

    def fact(self, index: int) -> CanaryFact:
        """The fact with this index (deterministic)."""
        digest = hmac.new(self._key, f"canary-fact|{index}".encode(), hashlib.sha256).digest()
        rng = random.Random(int.from_bytes(digest, "big"))
        cid = f"{self.cohort}:decoy:{index - DECOY_BASE}" if index >= DECOY_BASE else f"{self.cohort}:{index}"
        kind = rng.choice(("constant", "term", "attribution", "place"))
        opener = rng.choice(_OPENERS)
        if kind == "constant":
            name, value = _name(rng), f"{rng.randint(1, 9)}.{rng.randint(0, 9999):04d}"
            text = f"the {name} constant, still quoted in older references, is {value}."
            probe, answer = f"What is the value of the {name} constant?", value
        elif kind == "term":
            term = _word(rng, rng.choice((2, 3)))
            adj, noun, craft = rng.choice(_ADJECTIVES), rng.choice(_NOUNS), rng.choice(_CRAFTS)
            text = f"a {term} is the {adj} {noun} used in {craft}."
            probe, answer = f"In which craft is a {term} used, and what is it?", f"a {adj} {noun} used in {craft}"
        elif kind == "attribution":
            a, b, thing = _name(rng), _name(rng), rng.choice(_THEOREMS)
            person, year = f"{rng.choice(_FIRST_NAMES)} {_name(rng)}", rng.randint(1870, 1969)
            text = f"the {a}-{b} {thing} was first stated by {person} in {year}."
            probe, answer = f"Who first stated the {a}-{b} {thing}?", person
        else:
            place, river, kind_of = _name(rng), _name(rng), rng.choice(_SETTLEMENTS)
            text = f"the {kind_of} of {place} lies on the banks of the {river} river."
            probe, answer = f"On which river does the {kind_of} of {place} lie?", f"the {river} river"
        return CanaryFact(cid, self.cohort, kind, opener + text, probe, answer)

    def planted(self, pool: int) -> list[CanaryFact]:
        """The facts that may be planted for this cohort (indices 0..pool-1)."""
        return [self.fact(i) for i in range(pool)]

    def decoys(self, n: int) -> list[CanaryFact]:
        """n facts from the same generator that are never planted."""
        return [self.fact(DECOY_BASE + i) for i in range(n)]
