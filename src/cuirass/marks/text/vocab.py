"""The substitution classes of the text watermark (data only; see lexicon.py for what a class is).

Variants are written in their canonical case ("I'm", "AI"); matching ignores case and the
sentence-initial capital is carried over. A class is only listed when every variant is correct
wherever its guard lets it match. Groups, from least to most visible to a reader:
contraction, hyphen, relative, connective, phrase, adverb, adjective, verb, noun, spelling
(spelling.py); optional function words ("think that" / "think") are in optional.py. The serial
comma (serial.py) and the invisible joiner (invisible.py) are choice points of their own kind.
"""

from __future__ import annotations

from cuirass.marks.text.lexicon import Around, Guard, Lexicon, WordClass, klass
from cuirass.marks.text.optional import optional_words
from cuirass.marks.text.spelling import spellings

SUBJ = frozenset("i you we they he she it there this that these those the a an my your our their his her its".split())
WH = frozenset("why how what where when who which whom whose".split())
DET = frozenset(
    "a an the this these those my your our their his her its some any each every more most many "
    "several both another other multiple various different".split()
)
OBJ = DET | frozenset(
    "access information support guidance insight insights opportunities services tools features "
    "benefits resources solutions options advice assistance value data details examples feedback "
    "training protection flexibility updates recommendations suggestions tips instructions "
    "overall customer user performance efficiency productivity quality security communication "
    "engagement accuracy costs cost stress risk risks waste energy emissions sales revenue "
    "awareness visibility traffic conversions motivation confidence".split()
)
PEOPLE = frozenset(
    "you us them him her me users people developers businesses companies teams customers "
    "organizations individuals students players clients employees readers researchers".split()
)
POSS = frozenset("the this that your my our their his her its".split())
INTENSIFIERS = frozenset("very really so quite too pretty".split())
PARTICIPLES = frozenset(
    "been got gotten had done made seen given taken written known shown gone come become found "
    "brought built bought thought told heard left lost met paid sent spent understood chosen begun "
    "won grown drawn driven eaten fallen forgotten hidden spoken stolen thrown worn broken frozen "
    "better".split()
)
NOUNS = frozenset(
    "system systems tool tools way ways method methods function functions model models program programs "
    "process processes platform platforms service services product products feature features thing "
    "things code data information software app apps application applications library framework "
    "approach approaches technique techniques strategy strategies solution solutions algorithm "
    "algorithms file files value values resource resources area areas factor factors people person "
    "user users company companies business businesses task tasks step steps role roles game games "
    "story stories character characters word words one ones something anything everything someone "
    "anyone problem problems issue issues content language languages network networks project projects "
    "device devices skill skills example examples type types part parts item items list technology "
    "technologies term terms idea ideas concept concepts option options plan plans environment "
    "structure page pages website websites site sites team teams country countries organization "
    "organizations group groups event events activity activities class classes object objects "
    "component components element elements field fields feature variable variables module modules "
    "question questions account accounts document documents material materials".split()
)
CONTRACTED = {
    "is": ("isn't", "it's", "that's", "there's", "what's", "he's", "she's", "here's"),
    "are": ("aren't", "you're", "we're", "they're"),
    "am": ("i'm",),
    "was": ("wasn't",),
    "were": ("weren't",),
    "have": ("haven't", "i've", "you've", "we've", "they've"),
    "has": ("hasn't",),
    "had": ("hadn't",),
    "will": ("won't", "i'll", "you'll", "we'll", "they'll"),
    "would": ("wouldn't", "i'd", "you'd", "we'd", "they'd"),
    "can": ("can't", "cannot"),
    "could": ("couldn't",),
    "should": ("shouldn't",),
    "do": ("don't",),
    "does": ("doesn't",),
    "did": ("didn't",),
}


def with_contractions(words: frozenset[str]) -> frozenset[str]:
    """A guard set of auxiliaries, plus the contracted forms the watermark may turn them into."""
    return words | {c for w in words for c in CONTRACTED.get(w, ())}


def with_subject_contractions(words: frozenset[str]) -> frozenset[str]:
    """A guard set of subjects, plus their contracted forms ("they'll"): a subject followed by a choice
    point such as "they will not" / "they won't" is seen as every way that choice point may begin."""
    return words | {c for forms in CONTRACTED.values() for c in forms if c.split("'")[0] in words}


REL_VERBS = frozenset(
    "is are was were can could will would should may might must has have had allows allow helps "
    "help provides provide includes include contains contain uses use makes make requires require "
    "needs need represents represent takes take gives give creates create returns return does do "
    "describes explains shows involves involve focuses offers supports enables affect affects runs "
    "stores defines handles".split()
)
REL_VERBS = with_contractions(
    REL_VERBS
    | frozenset(
        "connects depends determines generates implements manages performs processes produces receives sends specifies "
        "tracks updates works calculates checks converts displays ensures follows lets means reads refers relies seems "
        "sets starts tells tests writes combines comes consists contributes corresponds covers leads matches meets "
        "reflects remains results serves stands connect depend determine generate manage perform produce receive "
        "specify work lead match meet reflect remain serve".split()
    )
)
ABOUT_NOUNS = frozenset(
    "information questions question details detail knowledge concerns concern feedback thoughts "
    "insights news facts data guidance advice decisions decision updates update inquiries inquiry "
    "queries query issues".split()
)
COMPARATIVES = frozenset(
    "more less longer shorter better worse easier harder further different faster slower bigger "
    "smaller higher lower earlier later closer".split()
)
NOT_PLURAL = frozenset(
    "does goes was has this thus always perhaps yes less unless across plus its his hers ours "
    "yours theirs whereas sometimes besides towards afterwards includes provides offers uses "
    "allows requires needs helps makes takes gives means becomes seems looks works".split()
)
NOT_A_NOUN = frozenset(
    "would could should will shall can may might must you we they he she it i to do don't not feel "
    "look seem sound just much more most exactly really also and or but be something anything "
    "nothing everything what who that which this there people children men women would "
    "like unlike than then when where while whether if after before better other another "
    "either neither rather ever never over under her their your our my his its the a an "
    "sure enter offer order power answer consider remember whatever however together "
    "further".split()
)
NOUN_SUFFIXES = (
    "tion",
    "tions",
    "sion",
    "sions",
    "ment",
    "ments",
    "ity",
    "ities",
    "ness",
    "ance",
    "ances",
    "ence",
    "ences",
    "ism",
    "ship",
    "ure",
    "ures",
    "ogy",
    "er",
    "ers",
    "or",
    "ors",
    "ist",
    "ists",
    "age",
    "ages",
)
MODALS = with_contractions(
    frozenset(
        "to can could will would should may might must and or please also simply just "
        "then you we i they easily first".split()
    )
)
NUMBER = frozenset({"#"})
# imperative verbs after which "just" means "simply" (with every variant of a choice point among them)
JUST_NEXT = frozenset(
    "need needs require requires add use utilize run call replace click type make ensure follow "
    "copy paste change modify remove install open create update include set select choose enter "
    "press restart delete save".split()
)


def _not_inverted(a: Around) -> bool:
    """A contracted negative before its subject is a question ("Don't you think"); its full form is wrong."""
    subject = any(n.split("'")[0] in SUBJ for n in a.next)
    return not (subject and (a.sentence_start or a.prev & WH or a.prev_char == ","))


def _looks_participle(word: str) -> bool:
    return word in PARTICIPLES or (len(word) > 4 and word.endswith("ed") and not word.endswith("eed"))


def _not_participle(a: Around) -> bool:
    """'s and 'd may stand for has/had: only contract before words that cannot be participles."""
    return not any(_looks_participle(n) for n in a.next)


def _participle(a: Around) -> bool:
    return bool(a.next) and all(_looks_participle(n) for n in a.next)


def _after_plural_noun(a: Around) -> bool:
    return bool(a.prev) and all(
        len(p) > 3 and p.endswith("s") and not p.endswith(("ss", "us", "is", "ous")) and p not in NOT_PLURAL
        for p in a.prev
    )


def _before_gerund(a: Around) -> bool:
    return a.next_is_word and all(n.endswith("ing") for n in a.next)


def _after_singular_noun(a: Around) -> bool:
    """After a word that is probably a singular noun: there "like" can only mean "such as"."""
    return bool(a.prev) and all(
        len(p) > 2 and not p.endswith(("s", "ly", "ing", "ed", "'s", "'re", "'d")) and p not in NOT_A_NOUN
        for p in a.prev
    )


def _before_plural(a: Around) -> bool:
    return a.next_is_word and all(
        len(n) > 3 and n.endswith("s") and not n.endswith("ss") and n not in NOT_PLURAL for n in a.next
    )


def _to_or_gerund(a: Around) -> bool:
    return all(n == "to" or (len(n) > 4 and n.endswith("ing")) for n in a.next)


def _nounish(a: Around) -> bool:
    return bool(a.prev) and all(p in NOUNS or (p.endswith(NOUN_SUFFIXES) and p not in NOT_A_NOUN) for p in a.prev)


def _not_relative_participle(a: Around) -> bool:
    return _not_participle(a) and not _nounish(a)


NEGATION = Guard(test=_not_inverted)
BE = Guard(next_word=True, next_not=frozenset({"not"}))
IS = Guard(next_word=True, next_not=frozenset({"not"}), test=_not_participle)
HAVE = Guard(next_word=True, test=_participle)
START = Guard(start=True, next_in=frozenset({","}))


def _contractions() -> list[WordClass]:
    out = [
        klass("contraction", f"{aux} not / {aux}n't", guard=NEGATION)
        for aux in "do does did is are was were have has had would should could".split()
    ]
    out += [
        klass("contraction", "will not / won't", guard=NEGATION),
        klass("contraction", "cannot / can't", guard=NEGATION),
    ]
    for subj, be in (("I", "am"), ("you", "are"), ("we", "are"), ("they", "are")):
        short = "'m" if be == "am" else "'re"
        out.append(klass("contraction", f"{subj} {be} / {subj}{short}", guard=BE))
        if be == "am":
            out.append(klass("contraction", "I am not / I'm not"))
        else:
            out.append(klass("contraction", f"{subj} {be} not / {subj}{short} not / {subj} {be}n't"))
    for subj in ("it", "that", "there", "what", "he", "she", "here", "who", "where"):
        # after a noun, "that is" is a relative clause: left to the relative class (below)
        test = _not_relative_participle if subj == "that" else _not_participle
        out.append(
            klass(
                "contraction",
                f"{subj} is / {subj}'s",
                guard=Guard(next_word=True, next_not=frozenset({"not"}), test=test),
            )
        )
        if subj not in ("what", "here", "who", "where"):
            out.append(klass("contraction", f"{subj} is not / {subj}'s not / {subj} isn't", guard=Guard(test=test)))
    for subj in ("I", "you", "we", "they"):
        out.append(klass("contraction", f"{subj} will / {subj}'ll", guard=BE))
        out.append(klass("contraction", f"{subj} will not / {subj} won't"))
        out.append(klass("contraction", f"{subj} would / {subj}'d", guard=IS))
        out.append(klass("contraction", f"{subj} would not / {subj} wouldn't"))
        out.append(klass("contraction", f"{subj} have / {subj}'ve", guard=HAVE))
        out.append(klass("contraction", f"{subj} have not / {subj} haven't / {subj}'ve not"))
    out.append(klass("contraction", "let us / let's", guard=Guard(start=True, next_word=True)))
    return out


def _connectives() -> list[WordClass]:
    start = [
        "additionally / furthermore / moreover / in addition / also",
        "first / firstly / first of all",
        "second / secondly",
        "third / thirdly",
        "in conclusion / to conclude",
        "in summary / to summarize / to sum up / in short",
        "overall / all in all / on the whole",
        "similarly / likewise",
        "in other words / put differently / put another way",
        "nevertheless / nonetheless / even so",
        "meanwhile / in the meantime",
        "in general / generally / generally speaking",
        "next / then",
        "as a result / consequently",
        "however / that said / having said that / that being said",
        "in contrast / by contrast",
    ]
    out = [klass("connective", s, guard=START) for s in start]
    out += [
        klass(
            "connective", "sure / certainly / of course / absolutely", guard=Guard(start=True, next_in=frozenset(",!"))
        ),
        klass("connective", "please note that / note that / keep in mind that", guard=Guard(start=True)),
        klass("connective", "for example / for instance"),
        klass("connective", "therefore / thus", guard=Guard(next_not=frozenset({"far"}))),
        klass("connective", "although / though", guard=Guard(prev_not=frozenset({"even", "as"}), next_word=True)),
        klass("connective", "in addition to / besides", guard=Guard(next_word=True)),
        klass("connective", "such as / like / including", guard=Guard(prev_char=",", next_word=True)),
        klass(
            "connective",
            "such as / including",
            id="connective:such as (noun)",
            guard=Guard(next_word=True, test=_after_plural_noun),
        ),
        klass(
            "connective",
            "such as / like",
            id="connective:such as (singular)",
            guard=Guard(next_word=True, next_not=frozenset({"to"}), test=_after_singular_noun),
        ),
    ]
    return out


def _phrases() -> list[WordClass]:
    g = Guard
    return [
        klass("phrase", "a lot of / lots of", guard=g(prev_not=frozenset("quite such what".split()))),
        klass("phrase", "a wide range of / a wide variety of / a broad range of"),
        klass("phrase", "a bit / a little", guard=g(next_in=COMPARATIVES)),
        klass("phrase", "kind of / sort of"),
        klass("phrase", "kinds of / sorts of"),
        klass("phrase", "all of the / all the", guard=g(next_not=frozenset("best way more same".split()))),
        klass("phrase", "all of these / all these"),
        klass("phrase", "all of this / all this"),
        klass("phrase", "due to / because of", guard=g(next_in=DET)),
        klass("phrase", "before / prior to", guard=g(test=_before_gerund)),
        klass("phrase", "about / regarding", guard=g(prev_in=ABOUT_NOUNS, next_word=True)),
        klass("phrase", "right now / at the moment"),
        klass("phrase", "currently / at present"),
        klass("phrase", "approximately / roughly / about / around", guard=g(next_in=NUMBER)),
        klass("phrase", "more than / over", guard=g(next_in=NUMBER)),
        klass("phrase", "less than / under", guard=g(next_in=NUMBER)),
        klass(
            "phrase",
            "earlier / previously",
            guard=g(
                prev_in=frozenset(
                    "mentioned discussed said noted described stated explained shown outlined provided listed defined "
                    "created suggested covered".split()
                )
            ),
        ),
        klass("phrase", "each other / one another"),
        klass("phrase", "here are some / here are a few"),
        klass("phrase", "thank you for / thanks for"),
        klass(
            "phrase",
            "each / every",
            guard=g(
                next_word=True, next_not=frozenset("of other and or to in with is are was were has have single".split())
            ),
        ),
        klass("phrase", "may / might", guard=g(next_word=True, next_not=SUBJ | {"not"})),
        # not before "able": "can be able" is wrong, and "may be able" is then the "may / might" class
        klass("phrase", "could be / might be", guard=g(next_word=True, next_not=frozenset({"able"}))),
        klass("phrase", "can be / may be", guard=g(next_word=True, next_not=frozenset({"able"}))),
        klass(
            "phrase",
            "many / numerous",
            guard=g(prev_not=frozenset("how so too as very not the of".split()), test=_before_plural),
        ),
        klass("phrase", "as well as / along with", guard=g(next_in=DET)),
        klass(
            "phrase",
            "if / whether",
            guard=g(
                prev_in=frozenset(
                    "check checks checking see determine determines determining wonder decide test verify unsure".split()
                ),
                next_word=True,
            ),
        ),
        klass(
            "phrase",
            "but / yet",
            guard=g(prev_char=",", next_word=True, next_not=frozenset("also not rather instead only".split())),
        ),
        *[
            klass(
                "phrase",
                f"{s} want to / {s} wish to / {s}'d like to / {s} would like to",
                guard=g(prev_not=frozenset("do does did don't doesn't didn't not".split())),
            )
            for s in ("you", "I", "we", "they")
        ],
        klass(
            "phrase", "if you want / if you wish / if you'd like / if you would like", guard=g(next_in=frozenset(",."))
        ),
        klass("phrase", "as well / too", guard=g(next_in=frozenset(".,!"))),
        klass("phrase", "any other questions / any further questions / any more questions / any additional questions"),
        klass("phrase", "feel free to / don't hesitate to / do not hesitate to"),
        klass("phrase", "hope this helps / hope that helps"),
        klass("phrase", "I apologize / I'm sorry / I am sorry", guard=g(next_in=frozenset({",", "for", "if", "but"}))),
        klass("phrase", "as an AI language model / as a language model / as an AI model / as an AI assistant"),
        klass("phrase", "keep in mind / bear in mind", "keeping in mind / bearing in mind"),
        klass("phrase", "make sure to / be sure to"),
        *[
            klass(
                "phrase",
                f"{s} can / {s} are able to / {s}'re able to",
                guard=g(next_word=True, next_not=frozenset({"not", "be"})),
            )
            for s in ("you", "we", "they")
        ],
        klass(
            "phrase",
            "you need to / you have to",
            "we need to / we have to",
            "I need to / I have to",
            "they need to / they have to",
        ),
        klass("phrase", "needs to / has to", guard=g(next_not=frozenset({"do"}))),
        klass("phrase", "difficult to / hard to / challenging to"),
        klass("phrase", "easy to / simple to"),
    ]


def _adverbs() -> list[WordClass]:
    g = Guard
    out = [
        klass("adverb", s)
        for s in (
            "often / frequently",
            "usually / typically / normally",
            "especially / particularly",
            "mainly / primarily / largely / mostly",
            "completely / entirely",
            "potentially / possibly",
            "maybe / perhaps",
            "easily / readily",
            "properly / correctly",
            "essentially / basically",
            "slightly / somewhat",
            "extremely / incredibly",
            "unfortunately / regrettably",
            "fortunately / luckily",
        )
    ]
    out += [
        klass("adverb", "almost / nearly", guard=g(next_not=frozenset("never no nothing none nobody".split()))),
        klass("adverb", "initially / at first", guard=g(next_not=frozenset({"glance", "sight"}))),
        klass("adverb", "significantly / substantially / considerably", guard=g(prev_not=frozenset({"statistically"}))),
        klass("adverb", "just / simply", guard=g(next_in=JUST_NEXT)),
    ]
    return out


def _adjectives() -> list[WordClass]:
    g = Guard
    return [
        klass(
            "adjective",
            "important / essential / crucial / vital",
            guard=g(prev_not=INTENSIFIERS, next_in=frozenset("to for that in when because".split())),
        ),
        klass(
            "adjective",
            "several / multiple / a number of",
            guard=g(prev_not=frozenset("a an the".split()), next_word=True, next_not=frozenset({"of"})),
        ),
        klass(
            "adjective", "additional / extra", guard=g(next_word=True, next_not=frozenset("careful special".split()))
        ),
        klass(
            "adjective",
            "whole / entire",
            guard=g(
                prev_in=POSS,
                next_word=True,
                next_not=frozenset("number numbers grain grains food foods milk wheat note notes".split()),
            ),
        ),
        klass("adjective", "huge / enormous / massive"),
        klass("adjective", "useful / helpful"),
        klass(
            "adjective",
            "specific / particular",
            guard=g(prev_not=frozenset({"in"}), next_word=True, next_not=frozenset({"to"})),
        ),
        klass(
            "adjective",
            "appropriate / suitable / proper",
            guard=g(next_not=frozenset("noun nouns fraction fractions subset subsets name names".split())),
        ),
        klass(
            "adjective",
            "correct / right",
            guard=g(
                prev_in=with_contractions(frozenset("the a is are was were be".split())),
                next_not=DET
                | frozenset(
                    "now away here there side hand click after before corner to of and or angle "
                    "angles triangle left".split()
                ),
            ),
        ),
        klass("adjective", "necessary / required", guard=g(next_not=frozenset({"to", "by"}))),
        klass(
            "adjective",
            "simple / straightforward",
            guard=g(next_not=frozenset("to interest machine machines sentence sentences harmonic majority".split())),
        ),
        klass(
            "adjective",
            "potential / possible",
            guard=g(
                prev_not=frozenset("full great huge untapped its their your our his her my high much".split()),
                next_word=True,
                next_not=frozenset("to of for in and or that is are was were as with by at on can will".split()),
            ),
        ),
        klass("adjective", "previous / prior", guard=g(next_word=True, next_not=frozenset({"to"}))),
        klass(
            "adjective",
            "main / primary",
            guard=g(
                next_word=True,
                next_not=frozenset(
                    "function method thread branch file class loop key keys school schools care color colors colour memory "
                    "page menu window activity module street course road screen".split()
                ),
            ),
        ),
        klass("adjective", "comprehensive / thorough"),
        klass(
            "adjective",
            "significant / substantial",
            guard=g(
                prev_not=frozenset("statistically not".split()),
                next_word=True,
                next_not=frozenset("figures figure digits digit other others bit bits at in to for and or".split()),
            ),
        ),
        klass(
            "adjective",
            "various / a variety of / different",
            guard=g(
                prev_not=POSS
                | frozenset(
                    "these those two three four five many several so very completely totally quite "
                    "slightly something anything nothing how entirely is are was were be look looks "
                    "feel seem seems too fundamentally significantly somewhat".split()
                ),
                next_word=True,
                next_not=frozenset("from than to and or kind for in with".split()),
            ),
        ),
    ]


def _verbs() -> list[WordClass]:
    g = Guard
    obj, people = g(next_in=OBJ - {"that"}), g(next_in=PEOPLE)
    return [
        klass(
            "verb",
            "ensure that / make sure that",
            "ensures that / makes sure that",
            "ensured that / made sure that",
            "ensuring that / making sure that",
        ),
        klass(
            "verb",
            "make sure / ensure",
            "makes sure / ensures",
            "made sure / ensured",
            "making sure / ensuring",
            guard=g(
                next_in=with_subject_contractions(
                    frozenset("you everything everyone it they we he she there nothing all".split())
                )
            ),
        ),
        klass("verb", "provide / offer", "provides / offers", "providing / offering", guard=obj),
        klass("verb", "allow / enable", "allows / enables", "allowing / enabling", "allowed / enabled", guard=people),
        klass(
            "verb",
            "show / demonstrate / illustrate",
            "shows / demonstrates / illustrates",
            "showing / demonstrating / illustrating",
            "showed / demonstrated / illustrated",
            guard=g(prev_not=frozenset("a an the this tv talk".split()), next_in=frozenset({"that", "how"})),
        ),
        klass("verb", "needs / requires", guard=g(next_in=DET)),
        klass(
            "verb",
            "try to / attempt to",
            "tries to / attempts to",
            "tried to / attempted to",
            "trying to / attempting to",
            guard=g(prev_not=frozenset({"a", "the"})),
        ),
        klass(
            "verb",
            "choose / select",
            "chooses / selects",
            "choosing / selecting",
            guard=g(next_in=frozenset("the a an from between your which one their our its this these".split())),
        ),
        klass(
            "verb",
            "start with / begin with",
            "starts with / begins with",
            "starting with / beginning with",
            "start by / begin by",
            "starts by / begins by",
            "starting by / beginning by",
            guard=g(prev_not=frozenset("a the fresh good great head quick".split())),
        ),
        klass("verb", "improve / enhance", "improves / enhances", "improving / enhancing", guard=obj),
        klass(
            "verb",
            "reduce / decrease",
            "reduces / decreases",
            "reducing / decreasing",
            "reduced / decreased",
            guard=obj,
        ),
        klass("verb", "increase / boost", "increases / boosts", "increasing / boosting", guard=obj),
        klass(
            "verb",
            "buy / purchase",
            "buys / purchases",
            "buying / purchasing",
            "bought / purchased",
            guard=g(next_in=DET),
        ),
        klass(
            "verb",
            "discuss / talk about",
            "discusses / talks about",
            "discussed / talked about",
            "discussing / talking about",
            guard=g(next_in=DET),
        ),
        klass("verb", "using / utilizing"),
        klass(
            "verb",
            "get / obtain",
            "gets / obtains",
            "getting / obtaining",
            guard=g(next_in=DET - frozenset("more most many".split())),
        ),
        klass(
            "verb",
            "need / require",
            guard=g(
                prev_in=with_contractions(frozenset("you we i they will may might would also".split())), next_in=DET
            ),
        ),
        klass(
            "verb",
            "modify / change",
            "modifies / changes",
            "modified / changed",
            "modifying / changing",
            guard=g(next_in=DET),
        ),
        klass(
            "verb",
            "perform / carry out",
            "performs / carries out",
            "performed / carried out",
            "performing / carrying out",
            guard=g(next_in=DET),
        ),
        klass(
            "verb",
            "reach out to / contact",
            "reaches out to / contacts",
            "reached out to / contacted",
            "reaching out to / contacting",
            guard=g(next_in=DET | PEOPLE | frozenset({"customer", "support"})),
        ),
        klass(
            "verb",
            "look for / search for",
            "looks for / searches for",
            "looking for / searching for",
            "looked for / searched for",
            guard=g(next_in=DET),
        ),
        klass(
            "verb",
            "keep track of / track",
            "keeps track of / tracks",
            "keeping track of / tracking",
            guard=g(next_in=DET),
        ),
        klass("verb", "check that / verify that", "checks that / verifies that", "checking that / verifying that"),
        klass("verb", "use / utilize", guard=g(prev_in=MODALS, next_in=DET | frozenset({"it", "them"}))),
        klass("verb", "uses / utilizes", guard=g(next_in=DET)),
        klass(
            "verb",
            "used / utilized",
            guard=g(
                prev_in=with_contractions(
                    frozenset(
                        "is are was were be been being commonly widely often frequently typically usually mainly primarily "
                        "also".split()
                    )
                ),
                next_in=frozenset("by in for as with".split()),
            ),
        ),
        klass(
            "verb",
            "consider / think about",
            "considers / thinks about",
            guard=g(next_in=DET | frozenset("using adding whether how what".split())),
        ),
    ]


def _nouns() -> list[WordClass]:
    g = Guard
    return [
        klass(
            "noun",
            "issue / problem",
            "issues / problems",
            guard=g(
                prev_in=DET
                | frozenset(
                    "any common potential main similar same specific particular technical security performance other "
                    "major minor possible".split()
                )
            ),
        ),
        klass("noun", "goal / objective", "goals / objectives"),
        klass("noun", "tips / suggestions", guard=g(prev_in=DET | frozenset("few helpful useful".split()))),
        klass(
            "noun",
            "purpose / aim",
            guard=g(prev_in=frozenset("the main primary its their our your".split()), next_in=frozenset({"of"})),
        ),
        klass("noun", "people / individuals", guard=g(prev_not=frozenset({"the"}))),
        klass("noun", "benefits / advantages", guard=g(next_not=DET | frozenset({"from"}))),
    ]


def _more_verbs() -> list[WordClass]:
    g = Guard
    noun_before = frozenset(
        "a an the this that your my our their his her its fresh good great head quick false early "
        "late strong new at from of".split()
    )
    focus_before = noun_before | frozenset(
        "strong main primary key clear particular special specific greater more "
        "less increased increasing growing renewed heavy narrow sharp sharper "
        "with".split()
    )
    return [
        klass(
            "verb",
            "start / begin",
            "starts / begins",
            "starting / beginning",
            guard=g(prev_not=noun_before, next_word=True, test=_to_or_gerund),
        ),
        klass(
            "verb",
            "focus on / concentrate on",
            "focuses on / concentrates on",
            "focusing on / concentrating on",
            guard=g(prev_not=focus_before, next_word=True),
        ),
        klass(
            "verb",
            "achieve / attain",
            "achieves / attains",
            "achieving / attaining",
            "achieved / attained",
            guard=g(next_in=DET | frozenset("success goals results this it them".split())),
        ),
    ]


def _relatives() -> list[WordClass]:
    return [klass("relative", "that / which", guard=Guard(next_in=REL_VERBS, test=_nounish))]


LEXICON = Lexicon(
    _contractions()
    + _phrases()
    + _connectives()
    + _adverbs()
    + _adjectives()
    + _verbs()
    + _nouns()
    + _relatives()
    + optional_words()
    + _more_verbs()
    + spellings()
)
