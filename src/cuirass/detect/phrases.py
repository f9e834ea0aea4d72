"""Phrase lexicons: reasoning elicitation, rubric grading and coarse topics, in several languages.

Distillers ask for the reasoning behind an answer ("think step by step", "write out the
internal reasoning") and ask the model to grade answers against a rubric (docs/architecture.md, threat
model). The patterns are about *asking for* reasoning or grading, not about mentioning it, and
are matched against lower-cased text. Languages: en, zh, es, fr, de, ru, pt, it, ja, ko. Add a
phrase or a language by adding a pattern, not code.
"""

from __future__ import annotations

import re
import string

# Words: a CJK character alone (those scripts do not separate words), else a run of letters/digits.
WORD = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]|[^\W_\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]+")
_SPACE_OUT = str.maketrans(dict.fromkeys(string.punctuation + "“”‘’«»…—–·、，。！？；：（）【】《》「」¿¡", " "))


def words(text: str) -> list[str]:
    """The words of a text as WORD finds them, computed with str.translate/split (several times faster)."""
    out = text.translate(_SPACE_OUT).split()
    if text.isascii():
        return out
    return _split_scripts(out)


def line_words(text: str) -> list[list[str]]:
    """`words` of each line of a text (split at "\n"), translating the text once instead of once per line."""
    lines = text.translate(_SPACE_OUT).split("\n")  # the table maps punctuation only: lines stay where they were
    if text.isascii():
        return [line.split() for line in lines]
    return [_split_scripts(line.split()) for line in lines]


def _split_scripts(tokens: list[str]) -> list[str]:
    return [piece for token in tokens for piece in ((token,) if token.isascii() else WORD.findall(token))]


# Every pattern starts with a literal of 2+ characters, its "stem" (see Lexicon).
_YOUR = r"(?:me )?(?:your|all (?:of )?(?:your|the)|the|each|every|in detail (?:your|the)) "
_REASONING = [
    # en
    r"step by step",
    r"step-by-step",
    r"chain of thought",
    r"chain-of-thought",
    r"think (?:it )?(?:through|carefully|aloud|out loud|hard)",
    r"thinking (?:it )?(?:through|carefully|aloud|out loud)",
    r"let's think",
    r"let’s think",
    r"lets think",
    r"let us think",
    r"show " + _YOUR + r"(?:work|working|reasoning|steps|thought|derivation|calculations?|logic)",
    r"show work",
    *(
        verb + " " + _YOUR + r"(?:reasoning|thought process|thinking|steps|logic|rationale)"
        for verb in ("explain", "articulate", "describe", "write out", "write down", "lay out", "spell out", "detail")
    ),
    *(
        adj + r" (?:reasoning|thought process|thinking|rationale)"
        for adj in ("internal", "intermediate", "hidden", "full", "detailed", "complete", "explicit")
    ),
    r"reasoning (?:process|steps|trace|chain|path)",
    r"thought process",
    r"before (?:giving|stating|providing|you give|you state|answering)[^.?!\n]{0,40}answer",
    r"\\boxed",
    r"<think>",
    r"reason carefully",
    r"reason step",
    r"justify (?:each|every|your) step",
    r"walk me through (?:the|your|each)",
    r"one step at a time",
    r"stepwise",
    r"step-wise",
    r"in (?:small|clear|logical|numbered|explicit) steps",
    r"intermediate steps",
    r"line of reasoning",
    r"chain of reasoning",
    r"reason through",
    r"reasoning path",
    r"work through (?:the|this|it|each)",
    r"work (?:this|it) out step",
    r"how you (?:arrive|arrived|got|get|reach|reached) (?:at )?(?:the|your|this) (?:answer|result|solution|conclusion)",
    r"break (?:the problem|it|this) (?:down )?into (?:steps|smaller steps)",
    r"each inference",
    r"un paso a la vez",
    r"une étape à la fois",
    r"einen schritt nach dem anderen",
    # zh
    r"一步一步",
    r"一步步",
    r"逐步",
    r"分步",
    r"推理过程",
    r"思考过程",
    r"思维链",
    r"解题步骤",
    r"解题过程",
    r"详细(?:的)?(?:推理|推导|步骤|思路)",
    r"写出(?:你的)?(?:推理|思路|步骤)",
    r"展示(?:你的)?(?:推理|思路|步骤|过程)",
    r"请先思考",
    # es
    r"paso a paso",
    r"cadena de pensamiento",
    r"proceso de (?:pensamiento|razonamiento)",
    *(
        verb + r" (?:tu|su|el) (?:razonamiento|trabajo|proceso)"
        for verb in ("muestra", "explica", "describe", "detalla")
    ),
    r"piensa (?:con cuidado|detenidamente|cuidadosamente)",
    # fr
    r"étape par étape",
    r"chaîne de pensée",
    r"raisonnement (?:détaillé|complet|étape)",
    *(verb + r"z? (?:ton|votre|le) raisonnement" for verb in ("montre", "explique", "détaille", "décris")),
    r"réfléchis(?:sez)? (?:bien|soigneusement|étape)",
    # de
    r"schritt für schritt",
    r"schrittweise",
    r"gedankengang",
    r"denkprozess",
    r"rechenweg",
    r"lösungsweg",
    *(
        verb + r" (?:deinen|ihren|den|deine|jeden) (?:gedankengang|lösungsweg|rechenweg|überlegung|schritt)"
        for verb in ("zeige", "erkläre", "beschreibe", "begründe")
    ),
    r"denk sorgfältig nach",
    r"denke sorgfältig nach",
    r"denk gründlich nach",
    r"denke gründlich nach",
    # ru
    r"шаг за шагом",
    r"пошагово",
    r"ход мысл",
    r"ход решени",
    r"ход рассуждени",
    r"цепочк\w* рассуждени",
    r"подробн\w* (?:решени|рассуждени)",
    *(
        verb + r" (?:свои |своё |свое |твои |подробно )?(?:рассуждени|решени|ход)"
        for verb in ("покажи", "объясни", "распиши", "опиши")
    ),
    # pt / it
    r"passo a passo",
    r"cadeia de pensamento",
    r"raciocínio",
    r"ragionamento",
    r"catena di pensiero",
    # ja / ko
    r"ステップバイステップ",
    r"ステップごとに",
    r"段階的に",
    r"段階を追って",
    r"思考過程",
    r"推論過程",
    r"단계별로",
    r"단계적으로",
    r"추론 과정",
    r"사고 과정",
]

# Requests to grade, score or compare answers against criteria.
_GRADED = r" (?:the|this|these|each|following|both)[^.?!\n]{0,30}(?:response|answer|solution|output|completion)"
_RUBRIC = [
    # en
    r"rubric",
    *(verb + _GRADED for verb in ("grade", "score", "rate", "evaluate", "assess", "judge")),
    r"on a scale of \d",
    r"on a scale from \d",
    *(noun + r" (?:of|from|between) \d+ (?:to|and|-) \d+" for noun in ("score", "rating", "grade")),
    r"which (?:response|answer|completion|output) is (?:better|more)",
    r"assign a score",
    r"assign a grade",
    r"grading (?:criteria|guidelines|scheme)",
    r"scoring (?:criteria|guidelines|rubric|scheme)",
    # zh
    r"评分标准",
    r"评分细则",
    r"打分",
    r"给出分数",
    r"给出一个分数",
    r"哪个回答更好",
    r"哪个答案更好",
    *(verb + r"(?:以下|这个|该)?(?:回答|答案)" for verb in ("评估", "评价")),
    # es
    r"rúbrica",
    *(verb + r" (?:la|esta|las|cada) (?:respuesta|solución)" for verb in ("califica", "evalúa", "puntúa")),
    r"puntuación del \d+ al \d+",
    r"puntuación de \d+ a \d+",
    # fr
    r"grille d'évaluation",
    r"barème",
    r"note sur \d+",
    *(verb + r"z? (?:la|cette|chaque) (?:réponse|solution)" for verb in ("note", "évalue")),
    # de
    r"bewertungsschema",
    r"bewertungskriterien",
    r"punktzahl (?:von|zwischen)",
    *(verb + r"(?:n sie)? (?:die|diese|jede) (?:antwort|lösung)" for verb in ("bewerte", "benote")),
    # ru
    r"критери\w* оценк",
    r"по шкале от",
    r"оцени ответ",
    r"оцените ответ",
    r"оцени решение",
    r"оцените решение",
    r"какой ответ лучше",
    r"который ответ лучше",
]


# Demands for a checkable final answer. Distillers filter harvested answers with answer
# checkers (docs/architecture.md, threat model), so they ask for the result in a fixed, parseable place.
_ANSWER = [
    r"final answer",
    r"final result",
    r"answer on its own line",
    r"result on its own line",
    r"answer in the (?:form|format) ",
    r"\\boxed",
    r"only then the (?:final )?(?:answer|result)",
    *(
        verb + r" (?:the|your) (?:final )?(?:answer|result)(?: on| in| at)"
        for verb in ("give", "state", "write", "put")
    ),
    r"end with (?:a|the) line",
    r"last line (?:with|containing|should)",
    r"最终答案",
    r"最終的な答え",
    r"최종 답",
    r"respuesta final",
    r"réponse finale",
    r"endgültige antwort",
    r"окончательн\w* ответ",
    r"итоговый ответ",
    r"resposta final",
    r"risposta finale",
]


def _stem(pattern: str) -> str:
    """The literal text every match of `pattern` starts with."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            if i + 1 < len(pattern) and not pattern[i + 1].isalnum():
                out.append(pattern[i + 1])
                i += 2
                continue
            break  # a class such as \d or \w
        if char in "?*{":
            return "".join(out[:-1])  # the previous character is optional
        if char in "()[]+|.^$":
            break
        out.append(char)
        i += 1
    return "".join(out)


class Lexicon:
    """A phrase family, matched against lower-cased text.

    A pattern's leading literal is its stem, and its stem's first word indexes it: a prompt
    only runs the regexes whose first word it contains, instead of one large alternation
    tried at every character.
    """

    __slots__ = ("name", "by_word", "first_words")

    def __init__(self, name: str, patterns: list[str]) -> None:
        self.name = name
        grouped: dict[str, list[str]] = {}
        for pattern in patterns:
            stem = _stem(pattern)
            if not WORD.search(stem):
                raise ValueError(f"{name}: pattern {pattern!r} must start with a literal word")
            grouped.setdefault(stem, []).append(pattern)
        by_word: dict[str, list[tuple[str, re.Pattern[str]]]] = {}
        for stem, group in grouped.items():
            first = WORD.search(stem).group(0)  # type: ignore[union-attr]
            by_word.setdefault(first, []).append((stem, re.compile("|".join(group))))
        self.by_word = by_word
        self.first_words = frozenset(by_word)

    def search(self, lowered: str, words: set[str]) -> str | None:
        """The first phrase of this family in lower-cased text whose words are `words`, or None."""
        for word in sorted(words & self.first_words):  # sorted: the same phrase every run
            for stem, regex in self.by_word[word]:
                if stem in lowered:
                    match = regex.search(lowered)
                    if match is not None:
                        return match.group(0)
        return None


REASONING = Lexicon("reasoning", _REASONING)
RUBRIC = Lexicon("rubric", _RUBRIC)
ANSWER = Lexicon("answer", _ANSWER)

# Coarse topics, enough to measure an account's narrowness and coverage. A prompt's topic is
# the family with most keyword tokens (ties: earlier family), "other" when none matches.
TOPICS = ("math", "code", "writing", "language", "business", "explain", "other")
_TOPIC_WORDS = {
    "math": "0 many much calculate compute solve equation percent percentage total average probability integral "
    "derivative sum ratio fraction each per cost costs dollars price half twice remaining altogether left "
    "profit earn earns earned spend spent buy buys bought miles hours minutes",
    "code": "def class function return import python javascript typescript sql java api bug error exception compile "
    "regex html css react json code script variable array const var int string null async await node "
    "docker git linux bash c++ golang rust implement implementation module",
    "writing": "write essay story poem email article blog letter rewrite paraphrase title headline lyrics caption "
    "slogan tweet post outline narrative",
    "language": "translate translation grammar spelling proofread synonym synonyms pronounce vocabulary",
    "business": "marketing business customer customers product startup sales brand seo resume interview strategy "
    "company revenue market",
    "explain": "what why explain difference how define meaning describe",
}
TOPIC_OF_WORD = {w: i for i, name in enumerate(TOPICS) for w in _TOPIC_WORDS.get(name, "").split()}
OTHER = len(TOPICS) - 1


def topic_of(tokens: list[str]) -> int:
    """Index into TOPICS of the family with most keyword tokens among lower-cased `tokens`."""
    found = [i for i in map(TOPIC_OF_WORD.get, tokens) if i is not None]
    if not found:
        return OTHER
    counts = [found.count(i) for i in range(OTHER)]
    return max(range(OTHER), key=counts.__getitem__)
