"""Spelling variants (American / British) and hyphenation, as substitution classes.

Both spellings of a word are correct English; the window of these classes has no context, so a
text spells each word one way throughout (but "organise" and "realize" may meet in one answer).
What a reader may notice: a British spelling in American prose.
"""

from __future__ import annotations

from cuirass.marks.text.lexicon import Guard, WordClass, klass

IZE_STEMS = (
    "organ real recogn custom priorit minim maxim summar categor visual emphas special personal standard "
    "central decentral final author apolog critic character modern memor symbol harmon mobil stabil "
    "familiar general monet revolution synchron optim normal capital local global social neutral "
    "jeopard hospital immun digit democrat empath sympath theor civil rational formal material "
    "commercial industrial"
).split()
# an open compound only before its noun ("real-time data"), where the hyphen is optional
ATTRIBUTIVE = Guard(next_word=True, next_not=frozenset("and or to is are was were of in for with as at on by".split()))

# families (one class each, so a text spells a word the same way in all its inflections)
OUR_FAMILIES = (
    "behavior behaviors behavioral",
    "favorite favorites",
    "favor favors favored favorable",
    "honor honors honored honorable",
    "labor",
    "neighbor neighbors neighboring neighborhood neighborhoods",
    "flavor flavors flavored",
    "humor",
    "rumor rumors",
    "endeavor endeavors",
    "harbor",
    "vapor",
    "savior",
    "armor",
    "odor",
    "vigor",
    "tumor tumors",
)
LL_FAMILIES = (
    "traveling traveled traveler travelers",
    "modeling modeled",
    "labeled labeling",
    "canceled canceling",
    "signaling signaled",
    "counseling counselor counselors",
    "fueled fueling",
    "leveled leveling",
    "channeled channeling",
    "tunneling",
    "marveled",
    "totaled",
    "dialed dialing",
)
OTHER_SPELLINGS = (
    "judgment / judgement",
    "judgments / judgements",
    "acknowledgment / acknowledgement",
    "toward / towards",
    "afterward / afterwards",
    "gray / grey",
    "aging / ageing",
    "skeptical / sceptical",
    "cozy / cosy",
    "fulfill / fulfil",
    "fulfills / fulfils",
    "fulfillment / fulfilment",
    "enrollment / enrolment",
    "defense / defence",
    "offense / offence",
    "jewelry / jewellery",
    "marvelous / marvellous",
    "learned / learnt",
    "dreamed / dreamt",
    "spelled / spelt",
    "burned / burnt",
    "leaped / leapt",
)
HYPHENATED = (
    "real-time long-term short-term high-quality full-time part-time third-party open-source "
    "cost-effective data-driven end-to-end high-level low-level large-scale small-scale real-world "
    "time-consuming fast-paced long-lasting eco-friendly user-friendly"
).split()
HYPHENATED_ANYWHERE = "step-by-step up-to-date in-depth decision-making problem-solving well-known e-commerce".split()


def spellings() -> list[WordClass]:
    """Spelling and hyphenation classes."""
    out = []
    for stem in IZE_STEMS:
        forms = [
            f"{stem}{s} / {stem}{s.replace('z', 's')}"
            for s in ("ize", "izes", "ized", "izing", "ization", "izations", "izer", "izers")
        ]
        out.append(klass("spelling", *forms, contextual=False))
    for stem in ("analy", "paraly", "cataly"):
        out.append(
            klass(
                "spelling",
                *[f"{stem}{s} / {stem}{s.replace('z', 's')}" for s in ("yze", "yzed", "yzing")],
                contextual=False,
            )
        )
    for family in OUR_FAMILIES:  # behavior -> behaviour
        out.append(klass("spelling", *[f"{w} / {w.replace('or', 'our', 1)}" for w in family.split()], contextual=False))
    for family in LL_FAMILIES:  # traveling -> travelling: double the l before the suffix
        forms = []
        for w in family.split():
            i = max(w.rfind("ed"), w.rfind("ing"), w.rfind("er"), w.rfind("or"))
            forms.append(f"{w} / {w[:i]}l{w[i:]}")
        out.append(klass("spelling", *forms, contextual=False))
    out += [klass("spelling", s, contextual=False) for s in OTHER_SPELLINGS]
    out += [klass("hyphen", f"{w} / {w.replace('-', ' ')}", guard=ATTRIBUTIVE, contextual=False) for w in HYPHENATED]
    out.append(klass("hyphen", "e-commerce / ecommerce", contextual=False))
    out += [
        klass("hyphen", f"{w} / {w.replace('-', ' ')}", contextual=False)
        for w in HYPHENATED_ANYWHERE
        if w != "e-commerce"
    ]
    return out
