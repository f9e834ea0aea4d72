"""Questions written the way people type them, and what the model says to anything that is not arithmetic.

`problems.py` writes word problems in the generator's own style. People write differently: bare expressions
("What is 15 + 27?", "15+27=?"), short stories in their own order and words ("Tom has 17 apples. He buys 25
more and then gives 9 to his sister. How many apples does Tom have now?"), lower case, no question mark. This
module writes such questions, each with several hand-written phrasings per family, the worked steps in the same
reasoning block and the same answer line as `problems.py`; and it writes everyday non-math inputs (greetings,
"what can you do?", a random question) with a short statement of what the model can do, and no reasoning block.

Two held-out axes, both stable across processes: numbers by `problems.split_of` (as in `problems.py`), and
phrasings by position (every HELD_OUT_EVERY-th phrasing of a family, the same for the off-topic prompts): a
held-out phrasing is never used in training or tuning, so accuracy on it measures questions written
differently from anything the model saw.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable

from cuirass.models.problems import (
    SPLITS,
    Problem,
    _calc,
    _step,
    reasoned,
    split_of,
)

HELD_OUT_EVERY = 4  # phrasing i of a family is held out when i % HELD_OUT_EVERY == HELD_OUT_EVERY - 1
PHRASINGS = ("seen", "unseen")

PEOPLE = [
    ("Tom", "he", "his"),
    ("Anna", "she", "her"),
    ("Raj", "he", "his"),
    ("Mia", "she", "her"),
    ("Luis", "he", "his"),
    ("Sofia", "she", "her"),
    ("Kenji", "he", "his"),
    ("Amara", "she", "her"),
    ("Oliver", "he", "his"),
    ("Lena", "she", "her"),
    ("Chen", "he", "his"),
    ("Fatima", "she", "her"),
    ("Sara", "she", "her"),
    ("Priya", "she", "her"),
    ("Jack", "he", "his"),
    ("Nora", "she", "her"),
]
RELATIVES = ["sister", "brother", "friend", "mom", "dad", "cousin", "neighbor", "teacher"]
COUNTABLES = ["apples", "candies", "marbles", "stickers", "books", "eggs", "balloons", "coins", "cards", "toy cars"]
MONEY = [("dollars", "${}"), ("euros", "€{}"), ("pounds", "£{}"), ("dollars", "{} dollars"), ("euros", "{} euros")]


def _variant(r: random.Random, phrasings: list[str], held: str) -> tuple[int, str]:
    """A phrasing index of the `held` kind (seen or unseen), uniformly among those."""
    unseen = HELD_OUT_EVERY - 1
    pool = [i for i in range(len(phrasings)) if (i % HELD_OUT_EVERY == unseen) == (held == "unseen")]
    i = r.choice(pool)
    return i, phrasings[i]


# --- bare expressions ------------------------------------------------------------------------------------

OP_WORDS = {
    "+": (["+", "plus", "+", "+"], ["add {a} and {b}", "the sum of {a} and {b}", "{a} added to {b}"]),
    "-": (["-", "minus", "-", "-"], ["subtract {b} from {a}", "take {b} away from {a}", "{a} take away {b}"]),
    "×": (["*", "x", "times", "×"], ["multiply {a} by {b}", "the product of {a} and {b}", "{a} multiplied by {b}"]),
    "÷": (["/", "÷", "divided by", "/"], ["divide {a} by {b}", "{a} split into {b} equal parts", "{a} over {b}"]),
}
EXPRESSION = [
    "What is {e}?",
    "{e}=?",
    "{e}",
    "what's {e}",
    "Calculate {e}.",
    "how much is {e}?",
    "{e} = ?",
    "whats {e}?",
    "Compute {e}",
    "Can you tell me what {e} is?",
    "{e}? thanks",
    "What's {e} equal to?",
    "quick: {e}",
    "Solve {e}",
    "I need {e}",
    "What does {e} come to?",
]
WORDED = [
    "Can you {w}?",
    "What do you get if you {w}?",
    "Please {w}.",
    "What is {w}?",
    "{w}, please",
    "how do I {w}?",
    "What's {w}?",
    "What is the result when you {w}?",
]


def _operands(r: random.Random, op: str) -> tuple[int, int, int]:
    if op == "+":
        a, b = r.randint(2, 99), r.randint(2, 99)
        return a, b, a + b
    if op == "-":
        a = r.randint(10, 150)
        b = r.randint(1, a - 1)
        return a, b, a - b
    if op == "×":
        a, b = (r.randint(2, 9), r.randint(2, 9)) if r.random() < 0.5 else (r.randint(10, 60), r.randint(2, 9))
        return a, b, a * b
    b, q = r.randint(2, 9), r.randint(2, 12)
    return b * q, b, q


def expression(r: random.Random, held: str) -> tuple[str, tuple[int, ...], str, list[str], int]:
    """One operation (`What is 15 + 27?`) or, a third of the time, two additions or subtractions in a row."""
    if r.random() < 1 / 3:
        a, b = r.randint(5, 60), r.randint(2, 40)
        c = r.randint(1, a + b - 1)
        first, second = r.choice("+-"), r.choice("+-")
        if first == "-":
            b = r.randint(1, a - 1)
        mid = a + b if first == "+" else a - b
        if second == "-":
            c = r.randint(1, mid - 1) if mid > 1 else 0
        end = mid + c if second == "+" else mid - c
        if r.random() < 0.3:
            e = f"{a} {'plus' if first == '+' else 'minus'} {b} {'plus' if second == '+' else 'minus'} {c}"
        else:
            e = f"{a}{first}{b}{second}{c}" if r.random() < 0.3 else f"{a} {first} {b} {second} {c}"
        _, q = _variant(r, EXPRESSION, held)
        steps = [_step(r, True, f"{_calc(r, a, first, b, mid)}."), _step(r, False, f"{_calc(r, mid, second, c, end)}.")]
        return "chain", (a, ord(first), b, ord(second), c), q.format(e=e), steps, end
    op = r.choice("+-×÷")
    a, b, c = _operands(r, op)
    symbols, words = OP_WORDS[op]
    if r.random() < 0.25:
        _, q = _variant(r, WORDED, held)
        q = q.format(w=r.choice(words).format(a=a, b=b))
    else:
        sym = r.choice(symbols)
        tight = r.random() < 0.4 and len(sym) == 1
        e = f"{a}{sym}{b}" if tight else f"{a} {sym} {b}"
        _, q = _variant(r, EXPRESSION, held)
        q = q.format(e=e)
    return "expression", (a, ord(op), b), q, [_step(r, True, f"{_calc(r, a, op, b, c)}.")], c


# --- short everyday stories ------------------------------------------------------------------------------

GAIN_LOSE = [
    "{N} has {a} {x}. {P} buys {b} more and then gives {c} to {p} {rel}. How many {x} does {N} have now?",
    "{N} had {a} {x}, got {b} more, then gave {c} away. How many {x} are left?",
    "I have {a} {x}. I get {b} more and give {c} to my {rel}. how many do I have?",
    "{N} starts with {a} {x}. {P} finds {b} more but loses {c}. How many {x} now?",
    "There were {a} {x} in a box. {N} added {b} and took out {c}. How many {x} are in the box?",
    "{N} got {b} {x} for {p} birthday. Before that {P} had {a}. Then {P} gave {c} to {p} {rel}. How many does {N} have?",
    "if i have {a} {x} and buy {b} more then give {c} to my {rel}, how many {x} do i have",
    "{N} has {a} {x}. {p} {rel} gives {N} {b} more, and {N} gives away {c}. How many are left?",
    "A jar holds {a} {x}. {N} puts in {b} more, then takes {c} out. How many {x} are in the jar now?",
    "{N} collected {a} {x} last week and {b} this week, then traded {c} of them. How many does {N} have left?",
    "My {rel} had {a} {x}. They bought {b} more and gave me {c}. How many {x} does my {rel} have now?",
    "{a} {x}, plus {b} more, minus the {c} {N} gave away. How many is that?",
]
UNIT_PRICE = [
    "If one {y} costs {m}, how much do {n} {x} cost?",
    "{n} {x} at {m} each. What is the total?",
    "{N} buys {n} {x}. Each one is {m}. How much does {N} pay?",
    "How much for {n} {x} if they are {m} each?",
    "One {y} is {m}. What do {n} cost?",
    "{x} cost {m} each and {N} wants {n} of them. How much money does {N} need?",
    "i bought {n} {x} for {m} each, how much did i spend",
    "What is the price of {n} {x} when one {y} costs {m}?",
]
GROUPS = [
    "There are {a} boxes with {b} {x} in each. How many {x} are there in total?",
    "{N} has {a} bags and each bag holds {b} {x}. How many {x} does {N} have?",
    "{a} rows of {b} {x}. How many {x} altogether?",
    "Each of {a} kids brings {b} {x}. How many {x} do they bring in total?",
    "{N} packs {b} {x} into each of {a} boxes. How many {x} is that?",
    "How many {x} are in {a} packs of {b}?",
    "a shelf has {a} rows with {b} {x} per row. how many {x}?",
    "{N} buys {a} packets of {x} with {b} in each packet. How many {x} does {N} get?",
]
SHARE = [
    "{N} shares {t} {x} equally among {b} friends. How many does each friend get?",
    "{t} {x} split evenly between {b} kids. How many each?",
    "If {t} {x} are divided equally into {b} bags, how many {x} go in each bag?",
    "{N} has {t} {x} and wants to give the same number to each of {b} friends. How many does each get?",
    "How many {x} does each person get if {b} people share {t} {x} equally?",
    "{b} children share {t} {x} fairly. How many {x} does each child get?",
    "we have {t} {x} for {b} people, how many per person?",
    "{t} {x} are put into {b} equal groups. How many {x} are in each group?",
]
DISTANCE = [
    "A car drives at {s} {u} per hour for {h} hours. How far does it go?",
    "{N} cycles {s} {u} every hour. How many {u} does {N} ride in {h} hours?",
    "If a train goes {s} {u} an hour, how far does it travel in {h} hours?",
    "{N} walks for {h} hours at {s} {u} per hour. What distance does {N} cover?",
    "A bus travels {h} hours at a steady {s} {u} per hour. How many {u} is the trip?",
    "How far do you get in {h} hours at {s} {u}/h?",
    "driving {h} hours at {s} {u} an hour, how far is that",
    "A boat sails at {s} {u} per hour. How far has it gone after {h} hours?",
]
COMPARE = [
    "{N} has {a} {x} and {M} has {b}. How many more {x} does {N} have?",
    "{N} is {a} years old. {p} {rel} is {b} years younger. How old is the {rel}?",
    "{M} scored {b} points and {N} scored {a}. How many more points did {N} score than {M}?",
    "What is the difference between {a} {x} and {b} {x}?",
    "{N} has {a} {x}. {M} has {b}. How many fewer does {M} have than {N}?",
    "{N} is {a} cm tall and {M} is {b} cm tall. How much taller is {N}?",
    "how many more is {a} than {b}?",
    "{N} read {a} pages and {M} read {b}. How many more pages did {N} read?",
]


def _who(r: random.Random) -> dict[str, str]:
    (n, pronoun, poss), (m, _, _) = r.sample(PEOPLE, 2)
    return {"N": n, "P": pronoun.capitalize(), "p": poss, "M": m, "rel": r.choice(RELATIVES), "x": r.choice(COUNTABLES)}


def gain_lose(r: random.Random, held: str) -> tuple[str, tuple[int, ...], str, list[str], int]:
    a, b = r.randint(3, 60), r.randint(2, 40)
    c = r.randint(1, a + b - 1)
    _, q = _variant(r, GAIN_LOSE, held)
    q = q.format(a=a, b=b, c=c, **_who(r))
    steps = [
        _step(r, True, f"adding the new ones: {_calc(r, a, '+', b, a + b)}."),
        _step(r, False, f"taking away {c}: {_calc(r, a + b, '-', c, a + b - c)}."),
    ]
    return "gain_lose", (a, b, c), q, steps, a + b - c


def unit_price(r: random.Random, held: str) -> tuple[str, tuple[int, ...], str, list[str], int]:
    n, price = r.randint(2, 9), r.randint(2, 25)
    unit, fmt = r.choice(MONEY)
    item = r.choice(["pen", "notebook", "sandwich", "ticket", "mug", "ball", "plant", "coffee"])
    _, q = _variant(r, UNIT_PRICE, held)
    q = q.format(n=n, m=fmt.format(price), y=item, x=item + "s", **{k: v for k, v in _who(r).items() if k != "x"})
    steps = [_step(r, True, f"{n} of them at {price} {unit} each: {_calc(r, price, '×', n, n * price)} {unit}.")]
    return "unit_price", (n, price), q, steps, n * price


def groups(r: random.Random, held: str) -> tuple[str, tuple[int, ...], str, list[str], int]:
    a, b = r.randint(2, 9), r.randint(2, 12)
    _, q = _variant(r, GROUPS, held)
    q = q.format(a=a, b=b, **_who(r))
    return "groups", (a, b), q, [_step(r, True, f"{a} groups of {b}: {_calc(r, b, '×', a, a * b)}.")], a * b


def share(r: random.Random, held: str) -> tuple[str, tuple[int, ...], str, list[str], int]:
    b, each = r.randint(2, 9), r.randint(2, 12)
    t = b * each
    _, q = _variant(r, SHARE, held)
    q = q.format(t=t, b=b, **_who(r))
    return "share", (t, b), q, [_step(r, True, f"{t} shared by {b}: {_calc(r, t, '÷', b, each)}.")], each


def distance(r: random.Random, held: str) -> tuple[str, tuple[int, ...], str, list[str], int]:
    s, h = r.randint(2, 12) * 5, r.randint(2, 6)
    u = r.choice(["km", "miles"])
    _, q = _variant(r, DISTANCE, held)
    q = q.format(s=s, h=h, u=u, **_who(r))
    return "distance", (s, h), q, [_step(r, True, f"{s} {u} for {h} hours: {_calc(r, s, '×', h, s * h)} {u}.")], s * h


def compare(r: random.Random, held: str) -> tuple[str, tuple[int, ...], str, list[str], int]:
    a = r.randint(10, 150)
    b = r.randint(1, a - 1)
    _, q = _variant(r, COMPARE, held)
    q = q.format(a=a, b=b, **_who(r))
    return "compare", (a, b), q, [_step(r, True, f"the difference is {_calc(r, a, '-', b, a - b)}.")], a - b


Family = Callable[[random.Random, str], tuple[str, tuple[int, ...], str, list[str], int]]
FAMILIES: dict[str, Family] = {
    f.__name__: f for f in (expression, gain_lose, unit_price, groups, share, distance, compare)
}
FAMILY_WEIGHTS = {
    "expression": 4,
    "gain_lose": 2,
    "unit_price": 1,
    "groups": 1,
    "share": 1,
    "distance": 1,
    "compare": 1,
}


def casual(text: str, r: random.Random) -> str:
    """How people type: sometimes all lower case, sometimes without the closing punctuation."""
    if r.random() < 0.2:
        text = text.lower()
    if r.random() < 0.2 and text[-1:] in "?.":
        text = text[:-1]
    return text


def everyday(seed: int, split: str = "train", held: str = "seen") -> Problem:
    """An everyday question of `split` (numbers) and `held` (phrasing: seen in training, or held out)."""
    if split not in SPLITS or held not in PHRASINGS:
        raise ValueError(f"split must be one of {SPLITS} and held one of {PHRASINGS}")
    r = random.Random(f"cuirass-everyday:{seed}")
    names = sorted(FAMILIES)
    while True:
        family = r.choices(names, weights=[FAMILY_WEIGHTS[n] for n in names])[0]
        template, numbers, question, steps, answer = FAMILIES[family](r, held)
        if split_of(template, numbers) == split:
            return Problem(template, numbers, casual(question, r), reasoned("\n".join(steps), answer), answer)


# --- anything else ---------------------------------------------------------------------------------------

GREETINGS = ["hello", "hi", "hey", "Hello!", "hi there", "good morning", "Hey!", "hello there", "Hi,", "yo"]
ABOUT = [
    "who are you?",
    "what can you do?",
    "what are you?",
    "what is your name?",
    "can you help me?",
    "what do you know?",
    "are you a chatbot?",
    "how does this work?",
    "what are you good at?",
    "what should I ask you?",
    "are you an AI?",
    "tell me about yourself",
]
OTHER = [
    "what is the capital of France?",
    "tell me a joke",
    "write a poem about the sea",
    "how do I cook rice?",
    "what's the weather like today?",
    "translate 'good night' into Spanish",
    "who won the world cup?",
    "explain quantum physics",
    "can you write an email to my boss?",
    "what is the meaning of life?",
    "recommend a good movie",
    "how tall is Mount Everest?",
    "write some Python code to sort a list",
    "what time is it?",
    "summarize this article for me",
    "who was Napoleon?",
    "what should I eat for dinner?",
    "how do I fix my wifi?",
    "is coffee bad for you?",
    "what's the best programming language?",
]
INTRO = [
    "Hi! I am a small model built into Cuirass. I solve arithmetic and short word problems step by step. "
    'Try "What is 15 + 27?".',
    "Hello! I am Cuirass's built-in reference model: a small model that only does arithmetic. Ask me a sum or "
    'a short word problem, such as "What is 15 + 27?".',
    "I am a small arithmetic model that comes with Cuirass. I can work out sums, differences, products and short "
    "word problems, and I show my steps.",
]
DECLINE = [
    "Sorry, I can't help with that. I am a small model that only does arithmetic: ask me a sum or a short word "
    'problem, such as "What is 15 + 27?".',
    "That is outside what I can do. I am Cuirass's small built-in model and I only solve arithmetic and short "
    "word problems, step by step.",
    "I only know arithmetic, so I can't answer that. Try a sum or a word problem, like \"Tom has 17 apples and "
    'buys 25 more. How many does he have?".',
]


@dataclasses.dataclass(frozen=True, slots=True)
class Reply:
    """A non-math input and the model's reply to it (no reasoning block): a `Worked` example for training."""

    question: str
    solution: str


def off_topic(seed: int, held: str = "seen") -> Reply:
    """A non-math input (held: whether its greeting/question phrasing is seen in training) and a fitting reply."""
    r = random.Random(f"cuirass-off-topic:{seed}")
    x = r.random()
    if x < 0.5:
        _, about = _variant(r, ABOUT, held)
        prompt = f"{r.choice(GREETINGS)} {about}" if x < 0.25 else about
        reply = r.choice(INTRO)
    elif x < 0.6:
        _, prompt = _variant(r, GREETINGS, held)
        reply = r.choice(INTRO)
    else:
        _, other = _variant(r, OTHER, held)
        prompt = f"{r.choice(GREETINGS)} {other}" if x < 0.7 else other
        reply = r.choice(DECLINE)
    return Reply(casual(prompt, r), reply)
