"""Procedural multi-step arithmetic word problems with worked solutions: the reference model's task.

Each template draws its numbers, a story (names, items, places) and one of several phrasings for the question
and for every step of the solution, so the same problem has many correct worked solutions and sampling from a
model trained on them has real entropy. The worked steps sit in a `<think> ... </think>` reasoning block and
the reply ends with the short answer `The answer is N.`, which `cuirass.marks.answer.find_final_answer`
reads under its `answer_is` convention.

The arithmetic is kept within what a tiny model trained for minutes on a CPU can learn digit by digit:
products of one-digit numbers (and a few multiples of 5 or 60), sums and differences mostly below 200,
exact divisions and remainders by a one-digit number.

Split: a problem belongs to `train` or `test` by a stable hash of (template, numbers), so a held-out problem
never appears in training with the same numbers, whatever its wording. Everything is seeded: the same
(seed, index, split) always gives the same problem.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
from collections.abc import Callable, Iterator

ANSWER_LINE = "The answer is {}."
# The worked steps sit in a reasoning block before the short answer, as reasoning models write them (DeepSeek-R1,
# Qwen3); the local engine's `think` reasoning parser (cuirass.engine.reasoning) splits the block off.
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
TEST_SHARE = 10  # one (template, numbers) key in TEST_SHARE is held out
SPLITS = ("train", "test")

NAMES = [
    "Ana",
    "Ben",
    "Carla",
    "David",
    "Elena",
    "Farid",
    "Grace",
    "Hugo",
    "Ines",
    "Jamal",
    "Kiara",
    "Leo",
    "Maya",
    "Noah",
    "Olga",
    "Pablo",
    "Quinn",
    "Rosa",
    "Sam",
    "Tara",
    "Umar",
    "Vera",
    "Wes",
    "Yuki",
    "Zoe",
]
SNACKS = [
    "apples",
    "muffins",
    "pencils",
    "stickers",
    "cookies",
    "candles",
    "notebooks",
    "marbles",
    "oranges",
    "shells",
    "cards",
    "buttons",
]
THINGS = ["book", "hat", "scarf", "lamp", "kite", "ball", "puzzle", "mug", "plant", "wallet"]
VEHICLES = ["train", "car", "bus", "truck", "cyclist", "boat"]
# Interchangeable openers, step leads, remarks and closers, each equally likely: most of a solution's entropy
# lives here (about four bits per slot), which is what a sampling-time watermark needs to carry evidence in a
# short answer. Sixteen options per slot rather than a few: with several green lists per context
# (cuirass.marks.logit.keyed) a step with more good continuations carries more evidence, at no cost in length.
OPENERS = [
    "",
    "Let's work it out step by step.\n",
    "We can solve this in a few steps.\n",
    "Here is how to work it out.\n",
    "Let's break this down.\n",
    "Let's think about it step by step.\n",
    "We can find this one step at a time.\n",
    "Here is the working.\n",
    "Sure, here is the solution.\n",
    "Okay, let's solve it.\n",
    "This takes a few short steps.\n",
    "Good question, let's see.\n",
    "Time to do the arithmetic.\n",
    "One step at a time, then.\n",
    "Alright, here goes.\n",
    "We just follow the numbers.\n",
]
FIRST = [
    "First, ",
    "To start, ",
    "",
    "Step 1: ",
    "First of all, ",
    "To begin, ",
    "We start with this: ",
    "Start here: ",
    "Firstly, ",
    "Step one: ",
    "The first step: ",
    "Let's start: ",
    "Before anything else, ",
    "Our first job: ",
    "As a first step, ",
    "Begin here: ",
]
THEN = [
    "Then ",
    "Next, ",
    "After that, ",
    "Now ",
    "",
    "Then, ",
    "Moving on, ",
    "In the next step, ",
    "Next up, ",
    "From there, ",
    "Continuing, ",
    "After this, ",
    "With that done, ",
    "Following on, ",
    "Building on that, ",
    "The next step: ",
]
SO = [
    "So ",
    "That means ",
    "Therefore ",
    "",
    "Thus ",
    "Hence ",
    "As a result, ",
    "Putting it together, ",
    "Finally, ",
    "In the end, ",
    "All told, ",
    "Which means ",
    "This tells us ",
    "At last, ",
    "To finish, ",
    "Overall, ",
]
# A short remark after an intermediate step (most of the time): another free choice, a few tokens long.
REMARKS = [
    "We need this later.",
    "Keep that in mind.",
    "Hold on to that number.",
    "Remember this result.",
    "That part is done.",
    "Good, that is one piece.",
    "Note that down.",
    "This comes up again.",
    "Write that down.",
    "We will use it next.",
    "So far so good.",
    "That was the easy part.",
    "Keep this handy.",
    "Mark that result.",
    "That one is settled.",
    "We carry this forward.",
]
REMARK_SHARE = 0.8
# A last remark before the answer line.
CLOSERS = [
    "",
    "That is all the working.\n",
    "Every step checks out.\n",
    "Nothing else is needed.\n",
    "We are done.\n",
    "Each step is complete.\n",
    "All the numbers fit.\n",
    "This finishes it.\n",
    "That settles it.\n",
    "The working is complete.\n",
    "Everything adds up.\n",
    "No more steps are needed.\n",
    "That is the whole solution.\n",
    "The numbers check out.\n",
    "All done.\n",
    "Nothing is left to do.\n",
]
# How an unsplit step is written: the operator as a symbol or a word, then one of several verbs; and how a
# split step's chain opens and closes (`47 + 38 splits into 47 + 30 + 8 = 77 + 8 gives 85`).
SYMBOL_VERBS = ["=", "gives", "makes", "equals", "is", "comes to"]
WORD_VERBS = ["is", "makes", "gives", "equals", "comes to", "works out to"]
SPLIT_OPEN = ["=", "is", "equals", "splits into", "becomes", "breaks into"]
SPLIT_CLOSE = ["=", "gives", "makes", "is", "comes to"]

# How people wrap a problem in a request. The model learns to answer the problem whatever the frame (a
# share of its training prompts are framed), so casual users, paraphrasing harvesters and distillers who
# elicit full worked solutions all get its usual answer. Frames are not part of a problem's identity.
CASUAL = (
    "Quick question: {q}",
    "{q} Thanks!",
    "Can you work this out? {q}",
    "Help me with this one. {q}",
    "{q} Please show the steps.",
    "Homework check: {q}",
    "Hi! {q}",
    "{q} I am stuck on this one.",
)
ELICIT = (
    "Solve the following problem. Think step by step and show your work, then give the final answer on "
    "its own line.\n\n{q}",
    "Question: {q}\nGive a complete step-by-step solution and state the final answer.",
    "{q}\n\nExplain your reasoning step by step before giving the final answer.",
    "Provide a detailed worked solution with every intermediate calculation.\n{q}",
    "You are an expert math tutor. Solve the problem below step by step.\n\n{q}",
    "Problem: {q}\nShow all of your reasoning, then write the final answer.",
    "Let's think step by step. {q}",
    "Answer with a full chain of reasoning.\n{q}",
)
FRAMED_SHARE = 0.4  # of training prompts: half casual, half elicitation


def framed(question: str, r: random.Random) -> str:
    """The question as a training prompt: bare, or (FRAMED_SHARE of the time) inside a casual or eliciting frame."""
    x = r.random()
    if x >= FRAMED_SHARE:
        return question
    return r.choice(CASUAL if x < FRAMED_SHARE / 2 else ELICIT).format(q=question)


def reasoned(working: str, answer: int) -> str:
    """A target reply: the working inside the reasoning block, then the answer line."""
    return reasoned_text(working, ANSWER_LINE.format(answer))


def reasoned_text(working: str, answer: str) -> str:
    """Reasoning and answer in the reasoning model's one reply: the block, a blank line, the answer (the
    `think` reasoning parser splits it back into these two)."""
    return f"{THINK_OPEN}\n{working.strip()}\n{THINK_CLOSE}\n\n{answer}"


@dataclasses.dataclass(frozen=True, slots=True)
class Problem:
    """One word problem: the question a user asks, a worked solution, and the integer answer."""

    template: str
    numbers: tuple[int, ...]
    question: str
    solution: str
    answer: int

    @property
    def split(self) -> str:
        return split_of(self.template, self.numbers)


def split_of(template: str, numbers: tuple[int, ...]) -> str:
    """`test` for one key in TEST_SHARE, by a hash that is stable across processes and machines."""
    digest = hashlib.sha256(f"{template}:{','.join(map(str, numbers))}".encode()).digest()
    return "test" if int.from_bytes(digest[:8], "big") % TEST_SHARE == 0 else "train"


# --- phrasing helpers: each picks one of several equivalent ways to write the same thing -----------------


def _calc(r: random.Random, a: int, op: str, b: int, c: int) -> str:
    """An equation with its result, e.g. `4 × 3 = 12` or `4 times 3 makes 12`; multi-digit steps are split.

    Split the way people do mental arithmetic ("jump" strategies): `47 + 38 = 47 + 30 + 8 = 77 + 8 = 85`,
    `100 - 73 = 100 - 70 - 3 = 30 - 3 = 27`, `36 × 8 = 30 × 8 + 6 × 8 = 240 + 48 = 288`. Whether to split
    depends only on the operands' digits, never on a carry, so the model can always tell what comes next,
    and every step it writes is a one-digit fact or a round-number shift it learns quickly.
    """
    split = _split(a, op, b, c)
    if split:
        head, *middle, last = split.split(" = ")
        return f"{head} {r.choice(SPLIT_OPEN)} {' = '.join(middle)} {r.choice(SPLIT_CLOSE)} {last}"
    words = {"×": "times", "+": "plus", "-": "minus", "÷": "divided by"}[op]
    if r.random() < 0.5:
        return f"{a} {op} {b} {r.choice(SYMBOL_VERBS)} {c}"
    return f"{a} {words} {b} {r.choice(WORD_VERBS)} {c}"


def _split(a: int, op: str, b: int, c: int) -> str:
    """The split form of `a op b = c`, or "" when the step is already a one-digit or round-number fact."""
    if op in "+-" and b >= 10 and b % 10:
        tens, ones = b - b % 10, b % 10
        mid = a + tens if op == "+" else a - tens
        return f"{a} {op} {b} = {a} {op} {tens} {op} {ones} = {mid} {op} {ones} = {c}"
    if op == "×" and a >= 10 and a % 10 and 2 <= b <= 9:
        tens, ones = a - a % 10, a % 10
        return f"{a} × {b} = {tens} × {b} + {ones} × {b} = {tens * b} + {ones * b} = {c}"
    return ""


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def _step(r: random.Random, first: bool, body: str) -> str:
    lead = r.choice(FIRST if first else THEN)
    line = (lead + body) if lead else _cap(body)
    return f"{line} {r.choice(REMARKS)}" if r.random() < REMARK_SHARE else line


def _so(r: random.Random, body: str) -> str:
    lead = r.choice(SO)
    return (lead + body) if lead else _cap(body)


Template = Callable[[random.Random], tuple[tuple[int, ...], str, list[str], int]]


# --- templates: each returns (numbers, question, solution steps, answer) -----------------------------------


def shopping_change(r: random.Random) -> tuple[tuple[int, ...], str, list[str], int]:
    n, price, extra = r.randint(2, 9), r.randint(2, 9), r.randint(1, 30)
    extra = min(extra, 99 - n * price)
    bill = 100 if n * price + extra >= 50 else r.choice([50, 100])
    name, items, thing = r.choice(NAMES), r.choice(SNACKS), r.choice(THINGS)
    cost, total = n * price, n * price + extra
    q = r.choice(
        [
            f"{name} buys {n} {items} at {price} dollars each and a {thing} for {extra} dollars. {name} pays with a "
            f"{bill}-dollar bill. How much change does {name} get?",
            f"{name} pays for {n} {items} that cost {price} dollars each, plus a {thing} that costs {extra} dollars, "
            f"using a {bill}-dollar bill. How many dollars of change should {name} receive?",
            f"At the market, {items} cost {price} dollars each. {name} takes {n} of them and also a {thing} for "
            f"{extra} dollars, and hands over {bill} dollars. What is the change?",
        ]
    )
    steps = [
        _step(
            r,
            True,
            r.choice(
                [
                    f"the {items} cost {_calc(r, n, '×', price, cost)} dollars.",
                    f"{n} {items} at {price} dollars each cost {_calc(r, n, '×', price, cost)} dollars.",
                    f"{name} spends {_calc(r, n, '×', price, cost)} dollars on {items}.",
                ]
            ),
        ),
        _step(
            r,
            False,
            r.choice(
                [
                    f"adding the {thing} gives {_calc(r, cost, '+', extra, total)} dollars.",
                    f"with the {thing} the total is {_calc(r, cost, '+', extra, total)} dollars.",
                    f"the whole purchase costs {_calc(r, cost, '+', extra, total)} dollars.",
                ]
            ),
        ),
        _so(
            r,
            r.choice(
                [
                    f"the change is {_calc(r, bill, '-', total, bill - total)} dollars.",
                    f"{name} gets back {_calc(r, bill, '-', total, bill - total)} dollars.",
                ]
            ),
        ),
    ]
    return (n, price, extra, bill), q, steps, bill - total


def sharing(r: random.Random) -> tuple[tuple[int, ...], str, list[str], int]:
    trays, per = r.randint(2, 9), r.randint(3, 10)
    made = trays * per
    friends = r.randint(2, min(9, made - 1))
    kept = made % friends or friends  # keeps at least one, and leaves a multiple of `friends` to share
    rest = made - kept
    name, items = r.choice(NAMES), r.choice(["cookies", "muffins", "apples", "stickers", "cards", "candies"])
    box = r.choice(["trays", "boxes", "bags", "packs"])
    q = r.choice(
        [
            f"{name} has {trays} {box} with {per} {items} in each. {name} keeps {kept} and shares the rest equally "
            f"among {friends} friends. How many {items} does each friend get?",
            f"There are {trays} {box} of {items}, and each holds {per}. After keeping {kept} for later, {name} splits "
            f"the others evenly between {friends} friends. How many does each friend receive?",
            f"{name} fills {trays} {box} with {per} {items} each, sets {kept} aside, and gives the remaining {items} "
            f"to {friends} friends in equal shares. How many {items} per friend?",
        ]
    )
    steps = [
        _step(
            r,
            True,
            r.choice(
                [
                    f"there are {_calc(r, trays, '×', per, made)} {items} in all.",
                    f"{name} has {_calc(r, trays, '×', per, made)} {items}.",
                    f"the {box} hold {_calc(r, trays, '×', per, made)} {items} altogether.",
                ]
            ),
        ),
        _step(
            r,
            False,
            r.choice(
                [
                    f"after keeping {kept}, {_calc(r, made, '-', kept, rest)} {items} are left.",
                    f"{name} shares {_calc(r, made, '-', kept, rest)} {items}.",
                    f"{_calc(r, made, '-', kept, rest)} {items} remain to share.",
                ]
            ),
        ),
        _so(
            r,
            r.choice(
                [
                    f"each friend gets {_calc(r, rest, '÷', friends, rest // friends)} {items}.",
                    f"every friend receives {_calc(r, rest, '÷', friends, rest // friends)}.",
                ]
            ),
        ),
    ]
    return (trays, per, kept, friends), q, steps, rest // friends


def travel(r: random.Random) -> tuple[tuple[int, ...], str, list[str], int]:
    s1, h1 = r.randint(1, 6) * 5, r.randint(2, 4)
    s2, h2 = r.randint(1, 6) * 5, r.randint(2, 3)
    v = r.choice(VEHICLES)
    d1, d2 = s1 * h1, s2 * h2
    q = r.choice(
        [
            f"A {v} travels at {s1} km per hour for {h1} hours, then at {s2} km per hour for {h2} hours. "
            f"How many kilometres does it travel in total?",
            f"For {h1} hours a {v} keeps a speed of {s1} km an hour. It then changes to {s2} km an hour for {h2} more "
            f"hours. What is the total distance in km?",
            f"A {v} goes {s1} km each hour for {h1} hours and afterwards {s2} km each hour for {h2} hours. How far "
            f"does it go altogether?",
        ]
    )
    steps = [
        _step(
            r,
            True,
            r.choice(
                [
                    f"in the first part it covers {_calc(r, s1, '×', h1, d1)} km.",
                    f"the first {h1} hours give {_calc(r, s1, '×', h1, d1)} km.",
                    f"at {s1} km per hour for {h1} hours the {v} goes {_calc(r, s1, '×', h1, d1)} km.",
                ]
            ),
        ),
        _step(
            r,
            False,
            r.choice(
                [
                    f"the second part is {_calc(r, s2, '×', h2, d2)} km.",
                    f"at {s2} km per hour it goes {_calc(r, s2, '×', h2, d2)} km.",
                    f"the last {h2} hours add {_calc(r, s2, '×', h2, d2)} km.",
                ]
            ),
        ),
        _so(
            r,
            r.choice(
                [
                    f"the total distance is {_calc(r, d1, '+', d2, d1 + d2)} km.",
                    f"altogether the {v} travels {_calc(r, d1, '+', d2, d1 + d2)} km.",
                ]
            ),
        ),
    ]
    return (s1, h1, s2, h2), q, steps, d1 + d2


def leftovers(r: random.Random) -> tuple[tuple[int, ...], str, list[str], int]:
    bags, per, more, size = r.randint(2, 9), r.randint(3, 9), r.randint(1, 15), r.randint(3, 9)
    total = bags * per + more
    full, left = divmod(total, size)
    ask_left = r.random() < 0.5
    name, items = r.choice(NAMES), r.choice(SNACKS)
    want = "how many are left over" if ask_left else "how many full boxes"
    q = r.choice(
        [
            f"{name} has {bags} bags of {per} {items} and finds {more} more. {name} packs them into boxes of {size}. "
            f"{_cap(want)} does {name} get?"
            if not ask_left
            else f"{name} has {bags} bags of {per} {items} and finds {more} more. {name} packs them into boxes of {size}. "
            f"How many {items} are left over after filling as many boxes as possible?",
            f"There are {bags} bags with {per} {items} each, plus {more} loose {items}. They are packed {size} to a "
            f"box. {'How many ' + items + ' do not fit in a full box?' if ask_left else 'How many boxes can be filled?'}",
        ]
    )
    tail = f"{left} {items} are left over." if ask_left else f"{full} boxes are filled."
    steps = [
        _step(
            r,
            True,
            r.choice(
                [
                    f"the bags hold {_calc(r, bags, '×', per, bags * per)} {items}.",
                    f"{bags} bags of {per} make {_calc(r, bags, '×', per, bags * per)} {items}.",
                ]
            ),
        ),
        _step(
            r,
            False,
            r.choice(
                [
                    f"with the extra ones there are {_calc(r, bags * per, '+', more, total)}.",
                    f"adding {more} more gives {_calc(r, bags * per, '+', more, total)} {items}.",
                ]
            ),
        ),
        _step(
            r,
            False,
            r.choice(
                [
                    f"{total} ÷ {size} = {full} with remainder {left}.",
                    f"{total} divided by {size} is {full} with {left} left over.",
                    f"{full} boxes of {size} use {_calc(r, full, '×', size, full * size)}, "
                    f"and {_calc(r, total, '-', full * size, left)} remain.",
                ]
            ),
        ),
        _so(r, tail),
    ]
    return (bags, per, more, size, int(ask_left)), q, steps, left if ask_left else full


def savings(r: random.Random) -> tuple[tuple[int, ...], str, list[str], int]:
    weekly, weeks, spent, gift = r.randint(2, 9), r.randint(2, 9), r.randint(1, 15), r.randint(1, 20)
    saved = weekly * weeks
    spent = min(spent, saved - 1)
    left = saved - spent
    name, thing = r.choice(NAMES), r.choice(THINGS)
    q = r.choice(
        [
            f"{name} saves {weekly} dollars every week for {weeks} weeks, then spends {spent} dollars on a {thing}. "
            f"Later {name} gets {gift} dollars as a gift. How much money does {name} have now?",
            f"Each week {name} puts {weekly} dollars in a jar. After {weeks} weeks {name} buys a {thing} for {spent} "
            f"dollars and then receives a gift of {gift} dollars. How many dollars does {name} have?",
        ]
    )
    steps = [
        _step(
            r,
            True,
            r.choice(
                [
                    f"{name} saves {_calc(r, weekly, '×', weeks, saved)} dollars.",
                    f"after {weeks} weeks the jar has {_calc(r, weekly, '×', weeks, saved)} dollars.",
                ]
            ),
        ),
        _step(
            r,
            False,
            r.choice(
                [
                    f"buying the {thing} leaves {_calc(r, saved, '-', spent, left)} dollars.",
                    f"{name} has {_calc(r, saved, '-', spent, left)} dollars after the {thing}.",
                ]
            ),
        ),
        _so(
            r,
            r.choice(
                [
                    f"with the gift {name} has {_calc(r, left, '+', gift, left + gift)} dollars.",
                    f"the gift brings it to {_calc(r, left, '+', gift, left + gift)} dollars.",
                ]
            ),
        ),
    ]
    return (weekly, weeks, spent, gift), q, steps, left + gift


def workers(r: random.Random) -> tuple[tuple[int, ...], str, list[str], int]:
    people, each, days = r.randint(2, 6), r.randint(2, 6), r.randint(2, 5)
    job = r.choice(
        [
            ("painters", "fences"),
            ("bakers", "cakes"),
            ("gardeners", "trees"),
            ("tailors", "shirts"),
            ("builders", "walls"),
        ]
    )
    daily = people * each
    q = r.choice(
        [
            f"{people} {job[0]} each finish {each} {job[1]} a day. How many {job[1]} do they finish in {days} days?",
            f"A team of {people} {job[0]} works for {days} days. Every one of them makes {each} {job[1]} per day. "
            f"How many {job[1]} does the team make?",
        ]
    )
    steps = [
        _step(
            r,
            True,
            r.choice(
                [
                    f"in one day the team makes {_calc(r, people, '×', each, daily)} {job[1]}.",
                    f"each day they finish {_calc(r, people, '×', each, daily)} {job[1]}.",
                ]
            ),
        ),
        _so(
            r,
            r.choice(
                [
                    f"in {days} days they make {_calc(r, daily, '×', days, daily * days)} {job[1]}.",
                    f"over {days} days that is {_calc(r, daily, '×', days, daily * days)} {job[1]}.",
                ]
            ),
        ),
    ]
    return (people, each, days), q, steps, daily * days


def harvest(r: random.Random) -> tuple[tuple[int, ...], str, list[str], int]:
    mon, more, sold = r.randint(10, 40), r.randint(2, 20), r.randint(5, 40)
    tue = mon + more
    total = mon + tue
    sold = min(sold, total - 1)
    name, items = r.choice(NAMES), r.choice(["apples", "pears", "eggs", "tomatoes", "plums", "lemons"])
    q = r.choice(
        [
            f"{name} picks {mon} {items} on Monday and {more} more on Tuesday than on Monday. {name} sells {sold} of "
            f"them. How many {items} are left?",
            f"On Monday {name} collects {mon} {items}. On Tuesday {name} collects {more} more than on Monday. If "
            f"{sold} {items} are sold, how many remain?",
        ]
    )
    steps = [
        _step(
            r,
            True,
            r.choice(
                [
                    f"on Tuesday {name} picks {_calc(r, mon, '+', more, tue)} {items}.",
                    f"Tuesday gives {_calc(r, mon, '+', more, tue)} {items}.",
                ]
            ),
        ),
        _step(
            r,
            False,
            r.choice(
                [
                    f"both days give {_calc(r, mon, '+', tue, total)} {items}.",
                    f"the total is {_calc(r, mon, '+', tue, total)} {items}.",
                ]
            ),
        ),
        _so(
            r,
            r.choice(
                [
                    f"after selling {sold}, {_calc(r, total, '-', sold, total - sold)} {items} are left.",
                    f"{_calc(r, total, '-', sold, total - sold)} {items} remain.",
                ]
            ),
        ),
    ]
    return (mon, more, sold), q, steps, total - sold


def machine(r: random.Random) -> tuple[tuple[int, ...], str, list[str], int]:
    hours, every, makes = r.randint(1, 2), r.choice([10, 12, 15, 20, 30]), r.randint(2, 9)
    minutes = 60 * hours
    rounds = minutes // every
    toy = r.choice(["toys", "bottles", "bricks", "cups", "boxes"])
    q = r.choice(
        [
            f"A machine makes {makes} {toy} every {every} minutes. How many {toy} does it make in {hours} hours?",
            f"Every {every} minutes a machine turns out {makes} {toy}. How many {toy} come out in {hours} hours?",
        ]
    )
    steps = [
        _step(
            r,
            True,
            r.choice(
                [
                    f"{hours} hours is {_calc(r, hours, '×', 60, minutes)} minutes.",
                    f"there are {_calc(r, hours, '×', 60, minutes)} minutes in {hours} hours.",
                ]
            ),
        ),
        _step(
            r,
            False,
            r.choice(
                [
                    f"the machine runs {_calc(r, minutes, '÷', every, rounds)} rounds.",
                    f"that is {_calc(r, minutes, '÷', every, rounds)} batches.",
                ]
            ),
        ),
        _so(
            r,
            r.choice(
                [
                    f"it makes {_calc(r, rounds, '×', makes, rounds * makes)} {toy}.",
                    f"the total is {_calc(r, rounds, '×', makes, rounds * makes)} {toy}.",
                ]
            ),
        ),
    ]
    return (hours, every, makes), q, steps, rounds * makes


def tickets(r: random.Random) -> tuple[tuple[int, ...], str, list[str], int]:
    adults, ap, kids, kp = r.randint(2, 9), r.randint(5, 9), r.randint(2, 9), r.randint(2, 6)
    a, k = adults * ap, kids * kp
    place = r.choice(["zoo", "museum", "cinema", "park", "concert"])
    q = r.choice(
        [
            f"At the {place}, adult tickets cost {ap} dollars and child tickets cost {kp} dollars. A group buys "
            f"{adults} adult tickets and {kids} child tickets. How much do they pay?",
            f"A family buys {adults} adult tickets at {ap} dollars each and {kids} child tickets at {kp} dollars each "
            f"for the {place}. What is the total cost?",
        ]
    )
    steps = [
        _step(
            r,
            True,
            r.choice(
                [
                    f"the adult tickets cost {_calc(r, adults, '×', ap, a)} dollars.",
                    f"adults pay {_calc(r, adults, '×', ap, a)} dollars.",
                ]
            ),
        ),
        _step(
            r,
            False,
            r.choice(
                [
                    f"the child tickets cost {_calc(r, kids, '×', kp, k)} dollars.",
                    f"children pay {_calc(r, kids, '×', kp, k)} dollars.",
                ]
            ),
        ),
        _so(
            r,
            r.choice(
                [
                    f"the total is {_calc(r, a, '+', k, a + k)} dollars.",
                    f"they pay {_calc(r, a, '+', k, a + k)} dollars in all.",
                ]
            ),
        ),
    ]
    return (adults, ap, kids, kp), q, steps, a + k


def reading(r: random.Random) -> tuple[tuple[int, ...], str, list[str], int]:
    per, days, sunday = r.randint(3, 9), r.randint(2, 7), r.randint(3, 20)
    done = per * days + sunday
    pages = done + r.randint(5, 60)
    name = r.choice(NAMES)
    q = r.choice(
        [
            f"A book has {pages} pages. {name} reads {per} pages a day for {days} days and then {sunday} pages on "
            f"Sunday. How many pages are left to read?",
            f"{name} is reading a {pages}-page book: {per} pages each day for {days} days, then {sunday} pages on "
            f"Sunday. How many pages remain?",
        ]
    )
    steps = [
        _step(
            r,
            True,
            r.choice(
                [
                    f"{name} reads {_calc(r, per, '×', days, per * days)} pages in {days} days.",
                    f"the first {days} days cover {_calc(r, per, '×', days, per * days)} pages.",
                ]
            ),
        ),
        _step(
            r,
            False,
            r.choice(
                [
                    f"with Sunday that is {_calc(r, per * days, '+', sunday, done)} pages.",
                    f"adding Sunday gives {_calc(r, per * days, '+', sunday, done)} pages read.",
                ]
            ),
        ),
        _so(
            r,
            r.choice(
                [
                    f"{_calc(r, pages, '-', done, pages - done)} pages are left.",
                    f"there are {_calc(r, pages, '-', done, pages - done)} pages still to read.",
                ]
            ),
        ),
    ]
    return (pages, per, days, sunday), q, steps, pages - done


def ages(r: random.Random) -> tuple[tuple[int, ...], str, list[str], int]:
    age, gap, times, later = r.randint(3, 12), r.randint(2, 9), r.randint(2, 4), r.randint(2, 20)
    sister = age + gap
    parent = sister * times
    name = r.choice(NAMES)
    q = r.choice(
        [
            f"{name} is {age} years old. {name}'s cousin is {gap} years older, and their aunt is {times} times as old "
            f"as the cousin. How old will the aunt be in {later} years?",
            f"The cousin of {name} is {gap} years older than {name}, who is {age}. Their aunt's age is {times} times "
            f"the cousin's. What will the aunt's age be {later} years from now?",
        ]
    )
    steps = [
        _step(
            r,
            True,
            r.choice(
                [
                    f"the cousin is {_calc(r, age, '+', gap, sister)} years old.",
                    f"the cousin's age is {_calc(r, age, '+', gap, sister)}.",
                ]
            ),
        ),
        _step(
            r,
            False,
            r.choice(
                [
                    f"the aunt is {_calc(r, sister, '×', times, parent)} years old.",
                    f"the aunt's age is {_calc(r, sister, '×', times, parent)}.",
                ]
            ),
        ),
        _so(
            r,
            r.choice(
                [
                    f"in {later} years the aunt will be {_calc(r, parent, '+', later, parent + later)}.",
                    f"{later} years from now she will be {_calc(r, parent, '+', later, parent + later)}.",
                ]
            ),
        ),
    ]
    return (age, gap, times, later), q, steps, parent + later


TEMPLATES: dict[str, Template] = {
    f.__name__: f
    for f in (shopping_change, sharing, travel, leftovers, savings, workers, harvest, machine, tickets, reading, ages)
}


def problem(seed: int, split: str = "train") -> Problem:
    """The problem for `seed` in `split`: draws until the (template, numbers) key falls in that split."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
    r = random.Random(f"cuirass-reference:{seed}")
    while True:
        name = r.choice(sorted(TEMPLATES))
        numbers, question, steps, answer = TEMPLATES[name](r)
        if split_of(name, numbers) == split:
            working = r.choice(OPENERS) + "\n".join(steps) + "\n" + r.choice(CLOSERS)
            return Problem(name, numbers, question, reasoned(working, answer), answer)


def problems(n: int, seed: int = 0, split: str = "train") -> Iterator[Problem]:
    """`n` problems of one split; problem i comes from seed (seed, i), so prefixes are stable."""
    for i in range(n):
        yield problem(seed * 1_000_003 + i, split)
