"""Ordinary people using the API: casual users, power users, students, batch scripters, agent builders.

Each person has a timezone and hour-of-day habit, sessions of real ShareGPT conversations with
follow-ups and think times, a stable client (SDK user agent, parameters) and home addresses.
About a quarter work in teams that share an org, a NAT prefix, often a company card and an
internal tool's user agent, and whose accounts were created together: legit, and awkward for
any detector that leans on shared infrastructure alone.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Iterator
from typing import Any

from cuirass.lab.traffic import agentic
from cuirass.lab.traffic.clock import DAY, HOUR, Habit, generation_latency, habit, poisson, think_time
from cuirass.lab.traffic.conversation import dialogue, turns_of
from cuirass.lab.traffic.harvest import worked_reply
from cuirass.lab.traffic.identity import (
    CLOUD,
    Identity,
    home_addresses,
    host_in,
    opaque_id,
    payment_fingerprint,
    sdk_agent,
    subnet,
)
from cuirass.lab.traffic.record import event, tokens, user
from cuirass.lab.traffic.sources import Conversation, harvest
from cuirass.lab.traffic.templates import USER_EXPLAIN
from cuirass.lab.traffic.world import World

# Share of individual accounts per kind (backends are planned separately, see backends.py).
KINDS = (("casual", 0.62), ("power", 0.14), ("student", 0.13), ("batch", 0.05), ("agent_dev", 0.06))
# Hard negatives (issue 19): benign accounts that look heavy or alike. "corp" are employees of large
# organisations behind one NAT with one company card, an internal tool's agent and a single onboarding day.
HARD_NEGATIVE_KINDS = ("corp", "power", "chat_app", "wrapper_app", "tutor_app")
TEAM_SHARE = 0.2  # chance scale of starting a team; with teams of 3-25 about a quarter of people end up in one
_BATCH_TEMPLATES = (
    "Classify the sentiment of the following text as positive, negative or neutral. Reply with one word.\n\nText: {x}",
    "Summarize the following in one sentence:\n\n{x}",
    "Translate the following into French:\n\n{x}",
    "Extract every named entity from the text below and return them as a JSON list.\n\n{x}",
    "Rewrite the following so it is clear and professional:\n\n{x}",
)
_FOLLOW_UPS = (
    "why do you divide there?",
    "thanks! what if the numbers were doubled?",
    "ok got it",
    "are you sure? I got a different number",
    "can you check step 2 again?",
)


@dataclasses.dataclass(slots=True)
class Person:
    """One benign human account and the client it uses."""

    who: Identity
    kind: str
    habit: Habit
    params: dict[str, Any]
    adopt_at: float | None
    deck: int  # offset into the benign conversation permutation
    activity: float  # sessions per week


def client_params(rng: random.Random) -> dict[str, Any]:
    """The parameters one client sends on every request (libraries and apps are consistent)."""
    params: dict[str, Any] = {}
    temp = rng.choices((None, 0.7, 1.0, 0.2, 0.0, 0.5), weights=(40, 22, 10, 12, 8, 8))[0]
    if temp is not None:
        params["temperature"] = temp
    max_tokens = rng.choices((None, 256, 512, 1024, 2048, 4096), weights=(50, 5, 10, 15, 12, 8))[0]
    if max_tokens:
        params["max_tokens"] = max_tokens
    if rng.random() < 0.4:
        params["stream"] = True
    if rng.random() < 0.01:
        params["logprobs"] = True
    return params


def adoption(rng: random.Random, world: World) -> float | None:
    """When (if ever) a person starts using the newly released model: days to weeks after release."""
    if rng.random() < 0.45:
        return None
    return world.window.release + rng.expovariate(1 / (4 * DAY))


def plan_people(world: World, n: int, pool_size: int, corporate: int = 0) -> list[Person]:
    """n benign people with identities, habits, clients and disjoint stretches of the conversation deck,
    then `corporate` employees of large organisations (hard negatives)."""
    rng = world.rng("benign-plan")
    kinds = [k for k, _ in KINDS]
    weights = [w for _, w in KINDS]
    people: list[Person] = []
    deck = 0
    team_left, team = 0, None
    for i in range(n):
        prng = world.rng("benign-person", i)
        kind = prng.choices(kinds, weights=weights)[0]
        account = opaque_id("acct", world.seed, "benign", i)
        ips, sticky = home_addresses(prng)
        created = _created(prng, world)
        org = opaque_id("org", world.seed, "personal", i)
        fp, ua = payment_fingerprint(world.seed, account), sdk_agent(prng)
        if team_left == 0 and rng.random() < TEAM_SHARE / 8:
            team_left = rng.randint(3, 25)
            team = _team(world, rng, i)
        if team_left > 0 and team is not None:
            team_left -= 1
            org, nat, team_fp, team_ua, team_created = team
            ips, sticky = nat + ips[:1], 0.85
            fp = team_fp if prng.random() < 0.7 else fp
            ua = team_ua if prng.random() < 0.5 else ua
            created = team_created + prng.uniform(0, 2 * HOUR)
        activity = prng.lognormvariate(math.log(2.5 if kind != "power" else 12.0), 0.6)
        who = Identity(account, org, ips, ua, fp, created, sticky)
        people.append(
            Person(who, kind, habit(prng), client_params(prng), adoption(prng, world), deck % pool_size, activity)
        )
        deck += int(activity * world.window.days / 7 * 2) + 2
    left, k = corporate, 0
    while left > 0:  # organisations of 30-120 people, one NAT, one card, one onboarding day
        size = min(left, rng.randint(30, 120))
        org, nat, fp, ua, created = _team(world, rng, n + k)
        for e in range(size):
            prng = world.rng("benign-corp", k, e)
            account = opaque_id("acct", world.seed, "corp", k, e)
            activity = prng.lognormvariate(math.log(6.0), 0.6)
            who = Identity(account, org, nat, ua, fp, created + prng.uniform(0, 2 * HOUR), 0.5)
            people.append(Person(who, "corp", habit(prng, profile="office"), client_params(prng), None, deck, activity))
            deck += int(activity * world.window.days / 7 * 2) + 2
        left, k = left - size, k + 1
    return people


def _created(rng: random.Random, world: World) -> float:
    if rng.random() < 0.06:  # signed up during the window
        return world.window.start + rng.uniform(0, 0.8) * world.window.days * DAY
    return world.window.start - rng.uniform(1, 900) * DAY


def _team(world: World, rng: random.Random, i: int) -> tuple[str, tuple[str, ...], str, str, float]:
    """A team's org, NAT addresses (one /24), company card, internal tool agent, onboarding time."""
    org = opaque_id("org", world.seed, "team", i)
    office = f"{rng.randrange(60, 220)}.{rng.randrange(256)}.{rng.randrange(256)}"
    net = subnet(rng, CLOUD) if rng.random() < 0.3 else office
    nat = (host_in(rng, net), host_in(rng, net))
    ua = rng.choice((f"acme-internal-assistant/{rng.randint(1, 4)}.{rng.randint(0, 9)}", "OpenAI/Python 1.54.3"))
    created = world.window.start - rng.uniform(5, 600) * DAY
    return org, nat, payment_fingerprint(world.seed, org), ua, created


def stream(world: World, person: Person, pool: tuple[Conversation, ...], order: list[int]) -> Iterator[dict[str, Any]]:
    """The person's events in time order over the window."""
    rng = world.rng("benign-events", person.who.account)
    window = world.window
    n_sessions = poisson(rng, person.activity * window.days / 7) + (1 if rng.random() < 0.7 else 0)
    days = person.habit.active_days(rng, window, n_sessions)
    starts = sorted(person.habit.session_start(rng, window, d) for d in days)
    free_at = max(window.start, person.who.created)
    deck = person.deck
    for start in starts:
        if start < free_at:  # before signup, before the window, or while still busy: skip the session
            continue
        t = start
        if t >= window.end:
            break
        weights = (20, 30, 30, 20) if person.kind == "power" else (55, 25, 12, 8)
        for _ in range(rng.choices((1, 2, 3, 4), weights=weights)[0]):
            activity = _activity(rng, person.kind)
            if activity == "chat":
                conv = pool[order[deck % len(order)]]
                deck += 1
                items = _chat(world, rng, person, t, conv)
            elif activity == "problem":
                items = _problem(world, rng, person, t)
            elif activity == "batch":
                items = _batch(world, rng, person, t, pool, order, deck)
                deck += 7
            else:
                items = _agent(world, rng, person, t, pool[order[deck % len(order)]])
                deck += 1
            for ev in items:
                if ev["ts"] >= window.end:
                    return
                t = ev["ts"]
                yield ev
            t += generation_latency(rng, 300) + think_time(rng, 800, 200)
        free_at = t + rng.uniform(60, 1800)


def _activity(rng: random.Random, kind: str) -> str:
    if kind == "student":
        return rng.choices(("chat", "problem"), weights=(45, 55))[0]
    if kind == "batch":
        return rng.choices(("chat", "batch"), weights=(85, 15))[0]
    if kind == "agent_dev":
        return rng.choices(("chat", "agent"), weights=(50, 50))[0]
    if kind == "corp":
        return rng.choices(("chat", "problem", "batch", "agent"), weights=(70, 10, 10, 10))[0]
    return "chat"


def _chat(world: World, rng: random.Random, p: Person, t: float, conv: Conversation) -> Iterator[dict[str, Any]]:
    turns = turns_of(conv.turns, rng)
    if p.kind in ("student", "power") and rng.random() < 0.15:  # asks for an explanation as a follow-up
        turns.append((rng.choice(USER_EXPLAIN), "Sure, step by step: first we look at the question, then ..."))
    for ts, messages, reply in dialogue(rng, t, turns):
        model = world.model_for(rng, ts, p.adopt_at, p.who.account)
        yield event(ts, rng, p.who, model, messages, dict(p.params), reply)


def _problem(world: World, rng: random.Random, p: Person, t: float) -> Iterator[dict[str, Any]]:
    """A homework-style maths question (GSM8K test split, never the harvested train split)."""
    item = rng.choice(harvest("gsm8k_test"))
    roll = rng.random()
    ask = (
        item.task
        if roll < 0.6
        else f"{item.task} {rng.choice(USER_EXPLAIN)}"
        if roll < 0.85
        else f"{rng.choice(USER_EXPLAIN)}: {item.task}"
    )
    turns = [(ask, worked_reply(item))]
    for _ in range(rng.choice((0, 0, 1, 1, 2))):
        turns.append((rng.choice(_FOLLOW_UPS + USER_EXPLAIN), "Good question. Let's look at that step again: ..."))
    for ts, messages, reply in dialogue(rng, t, turns):
        model = world.model_for(rng, ts, p.adopt_at, p.who.account)
        yield event(ts, rng, p.who, model, messages, dict(p.params), reply)


def _batch(
    world: World, rng: random.Random, p: Person, t: float, pool: tuple[Conversation, ...], order: list[int], deck: int
) -> Iterator[dict[str, Any]]:
    """A script run over the person's own data: one template, temperature 0, back to back."""
    template = rng.choice(_BATCH_TEMPLATES)
    params = {"temperature": 0.0, "max_tokens": rng.choice((16, 64, 256))}
    model = world.model_for(rng, t, p.adopt_at, p.who.account)
    for j in range(rng.randint(30, 300)):
        conv = pool[order[(deck + j * 7919) % len(order)]]
        text = conv.turns[rng.randrange(len(conv.turns))][0]
        messages = [user(template.format(x=text))]
        ev = event(t, rng, p.who, model, messages, dict(params), "neutral" if "sentiment" in template else text[:200])
        yield ev
        t += generation_latency(rng, ev["response"]["usage"]["completion_tokens"]) + rng.uniform(0.05, 0.6)


def _agent(world: World, rng: random.Random, p: Person, t: float, conv: Conversation) -> Iterator[dict[str, Any]]:
    """A developer testing their own support agent: own tools, own system prompt, a real user ask."""
    system_prompt = f"You are the support assistant of {p.who.org}. Use the tools when they help."
    params = dict(p.params, tools=agentic.DEV_TOOLS, tool_choice="auto")
    for messages, reply, finish in agentic.episode(
        rng, conv.turns[0][0], conv.turns[0][1] or "Done.", agentic.DEV_TOOLS, system_prompt, max_steps=3
    ):
        model = world.model_for(rng, t, p.adopt_at, p.who.account)
        yield event(t, rng, p.who, model, messages, params, reply, finish)
        t += generation_latency(rng, tokens(reply)) + rng.uniform(0.3, 4.0)
