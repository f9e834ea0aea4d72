"""Running a campaign: its accounts, their infrastructure, request times, prompts and cover traffic.

`plan` turns a CampaignSpec into concrete campaigns (one, or one per account for lone scrapers),
and `stream` yields one member account's events in time order. Every member draws from its own
seeded random stream, so a campaign's traffic does not depend on what else is generated.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Iterator
from typing import Any

from cuirass.lab.traffic import agentic
from cuirass.lab.traffic.benign import client_params
from cuirass.lab.traffic.campaigns import CampaignSpec
from cuirass.lab.traffic.clock import DAY, HOUR, Habit, generation_latency, habit, poisson, think_time
from cuirass.lab.traffic.conversation import messages_at, turns_of
from cuirass.lab.traffic.harvest import RUBRICS, cot_request, plain_request, rubric_request
from cuirass.lab.traffic.identity import (
    CLOUD,
    Identity,
    address,
    browser_agent,
    home_addresses,
    host_in,
    opaque_id,
    payment_fingerprint,
    sdk_agent,
    subnet,
)
from cuirass.lab.traffic.record import assistant, event, tokens, user
from cuirass.lab.traffic.sources import Conversation, HarvestItem, harvest
from cuirass.lab.traffic.templates import FOLLOW_UP_HELDOUT, SYSTEM_TUTOR, Elicitor
from cuirass.lab.traffic.world import World

_SWEEP = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)


@dataclasses.dataclass(slots=True)
class Campaign:
    """A planned campaign: its spec, members, shared pools and prompt machinery."""

    id: str
    spec: CampaignSpec
    members: list[Identity]
    order: list[HarvestItem]  # items in the order the operator works through them
    elicitor: Elicitor
    system_prompt: str
    rubrics: tuple[str, ...]
    start: float
    shared: dict[str, list[str]]  # the shared pools: ip_prefixes, payment_fingerprints, user_agents


def plan(world: World, spec: CampaignSpec, index: int) -> list[Campaign]:
    """Concrete campaigns for a spec (`index` tells specs of the same kind apart)."""
    if spec.independent:
        return [
            _plan_one(world, dataclasses.replace(spec, accounts=1), f"{spec.kind}-{index}.{i + 1}", (index, i))
            for i in range(spec.accounts)
        ]
    return [_plan_one(world, spec, f"{spec.kind}-{index}", (index,))]


def _plan_one(world: World, spec: CampaignSpec, cid: str, key: tuple[int, ...]) -> Campaign:
    rng = world.rng("campaign", spec.kind, *key)
    window = world.window
    start = window.start + spec.start * window.days * DAY + rng.uniform(0, 6 * HOUR)
    n = spec.accounts
    n_shared = round(spec.shared_infra * n)
    nets = [subnet(rng, CLOUD) for _ in range(max(1, math.ceil(n_shared / 60)))]
    cards = [payment_fingerprint(world.seed, cid, "card", j) for j in range(max(1, n_shared // 25))]
    shared_ua = rng.choice(("OpenAI/Python 1.35.7", "python-httpx/0.27.2", "OpenAI/Python 1.40.0"))
    on_ip, on_card, on_ua = (set(rng.sample(range(n), n_shared)) for _ in range(3))
    burst_at = start - rng.uniform(1, 3) * DAY
    members = []
    for j in range(n):
        mrng = world.rng("member", cid, j)
        account = opaque_id("acct", world.seed, cid, j)
        if j in on_ip:
            net = nets[j % len(nets)]
            ips, sticky = tuple(host_in(mrng, net) for _ in range(2)), 0.7
        elif spec.addresses == "home":  # one residential address of its own
            ips, sticky = (address(mrng),), 1.0
        elif spec.addresses == "cloud":  # its own rented host, each in another /24
            ips, sticky = (host_in(mrng, subnet(mrng, CLOUD)),), 1.0
        elif spec.timing == "human":
            ips, sticky = home_addresses(mrng)
        else:  # residential proxies, rotating
            ips, sticky = tuple(address(mrng) for _ in range(5)), 0.3
        card = cards[j % len(cards)] if j in on_card else payment_fingerprint(world.seed, account)
        ua = shared_ua if j in on_ua else browser_agent(mrng) if spec.agent == "browser" else sdk_agent(mrng)
        if mrng.random() < spec.creation_burst:
            created = burst_at + mrng.uniform(0, 6 * HOUR)
        elif spec.timing == "human":  # aged or bought accounts
            created = start - mrng.uniform(60, 900) * DAY
        else:
            created = start - mrng.uniform(3, 120) * DAY
        members.append(Identity(account, opaque_id("org", world.seed, cid, j), ips, ua, card, created, sticky))
    order = _order(rng, spec)
    rubrics = (RUBRICS[:1], tuple(rng.sample(RUBRICS, 2)), RUBRICS)[spec.paraphrase]
    heldout = spec.phrasing == "heldout"
    system_prompt = (
        rng.choice(agentic.AGENT_SYSTEM_HELDOUT if heldout else agentic.AGENT_SYSTEM)
        if spec.style == "agentic"
        else "You are an impartial expert grader."
        if spec.style == "rubric"
        else rng.choice(SYSTEM_TUTOR)
    )
    shared = {
        "ip_prefixes": nets if n_shared else [],
        "payment_fingerprints": cards if n_shared else [],
        "user_agents": [shared_ua] if n_shared else [],
    }
    wrng = rng if spec.wording_seed == 0 else world.rng("wording", cid, spec.wording_seed)
    elicitor = Elicitor(wrng, spec.paraphrase, heldout, spec.wordings)
    return Campaign(cid, spec, members, order, elicitor, system_prompt, rubrics, start, shared)


def _order(rng: random.Random, spec: CampaignSpec) -> list[HarvestItem]:
    """The operator's work list: sources interleaved by weight, each walked in a cycle (shuffled,
    except by lone scrapers, which enumerate datasets in file order)."""
    pools = {name: list(harvest(name)) for name, _ in spec.sources}
    if not spec.independent:
        for pool in pools.values():
            rng.shuffle(pool)
    names, weights = [n for n, _ in spec.sources], [w for _, w in spec.sources]
    cursor = dict.fromkeys(names, 0)
    order = []
    for _ in range(sum(len(p) for p in pools.values())):
        name = rng.choices(names, weights=weights)[0]
        order.append(pools[name][cursor[name] % len(pools[name])])
        cursor[name] += 1
    return order


def _slots(rng: random.Random, world: World, c: Campaign, j: int, hab: Habit) -> Iterator[float]:
    """Request times of member j under the campaign's timing model (increasing)."""
    spec, n, window = c.spec, len(c.members), world.window
    end, interval = window.end, DAY / spec.rate_per_day
    t = c.start + rng.uniform(0, spec.ramp) * window.days * DAY
    if spec.timing == "balanced":  # one dispatcher, round-robin: request r goes to member r mod n
        k = 0
        while True:
            slot = c.start + (j + k * n) * interval / n + rng.uniform(-0.5, 0.5) * spec.jitter * interval
            if slot >= end:
                return
            if slot >= c.start:
                yield slot
            k += 1
    elif spec.timing == "human":  # sessions at habitual local hours, think-time gaps inside
        per_session = rng.randint(3, 8)
        for day in range(int((t - window.start) // DAY), int(math.ceil(window.days)) + 1):
            starts = sorted(
                hab.session_start(rng, window, day) for _ in range(poisson(rng, spec.rate_per_day / per_session))
            )
            for s in starts:
                if s < t:  # before this member starts, or while a session is still running
                    continue
                for _ in range(rng.randint(max(1, per_session // 2), per_session * 3 // 2)):
                    if s >= end:
                        return
                    yield s
                    s += think_time(rng, 1500, 200) * (1 + spec.jitter * rng.uniform(-0.5, 0.5))
                t = s
    else:
        while t < end:
            yield t
            step = (
                interval * (1 + spec.jitter * rng.uniform(-1, 1))
                if spec.timing == "uniform"
                else rng.expovariate(1 / interval)
            )
            t += max(step, 0.2)


def stream(world: World, c: Campaign, j: int, decoy: tuple[Conversation, ...]) -> Iterator[dict[str, Any]]:
    """Member j's events in time order. Each carries `_tag` ("harvest" or "cover"), stripped on write."""
    rng = world.rng("attack-events", c.id, j)
    spec, who, order = c.spec, c.members[j], c.order
    hab = habit(rng)
    pivot_at = world.window.release + rng.uniform(0.2, spec.pivot_hours) * HOUR if spec.pivot else None
    base = (
        client_params(rng)
        if spec.timing == "human"  # careful operators mimic ordinary clients
        else {"temperature": 0.0, "max_tokens": rng.choice((2048, 4096))}
    )
    cursor = 0 if spec.independent else rng.randrange(len(order))
    cover: list[tuple[str, str]] = []
    cover_at = n_cover = n_harvest = sweep = 0
    last = -math.inf
    cap = spec.requests or math.inf
    for r, slot in enumerate(_slots(rng, world, c, j, hab)):
        if n_cover + n_harvest >= cap:
            return
        t = max(slot, last + 0.5)
        model = world.new_model if pivot_at is not None and t >= pivot_at else world.models[0]
        if n_cover < spec.benign_mix * (n_cover + n_harvest + 1):  # cover traffic keeps its share exactly
            if cover_at >= len(cover):
                cover, cover_at = turns_of(rng.choice(decoy).turns, rng, 4), 0
            ev = event(t, rng, who, model, messages_at(cover, cover_at), dict(base), cover[cover_at][1])
            ev["_tag"] = "cover"
            cover_at, n_cover, last = cover_at + 1, n_cover + 1, t
            yield ev
            continue
        if spec.timing == "balanced":
            item = order[(j + r * len(c.members)) % len(order)]
        elif spec.independent:
            item, cursor = order[cursor % len(order)], cursor + 1
        else:
            item = order[rng.randrange(len(order))]
        params = dict(base)
        if rng.random() < spec.probe:
            sweep = _probe(rng, params, sweep)
        sys_prompt = c.system_prompt if rng.random() < spec.system_prompt_reuse else None
        for ev in _harvest(rng, c, who, item, sys_prompt, t, model, params):
            ev["_tag"] = "harvest"
            n_harvest, last = n_harvest + 1, ev["ts"]
            if last >= world.window.end:
                return
            yield ev
        if spec.style != "agentic" and rng.random() < spec.follow_up and n_cover + n_harvest < cap:
            ev = _follow_up(rng, who, ev, last)
            n_cover, last = n_cover + 1, ev["ts"]
            if last >= world.window.end:
                return
            yield ev


def _follow_up(rng: random.Random, who: Identity, asked: dict[str, Any], after: float) -> dict[str, Any]:
    """A turn that reads the harvested answer and asks about it, after a human's reading time: it costs
    the operator a request and hides the single-shot habit (a cover request, not a harvested answer)."""
    reply = asked["response"]["content"]
    question = rng.choice(FOLLOW_UP_HELDOUT)
    t = after + generation_latency(rng, tokens(reply)) + think_time(rng, len(reply), len(question))
    messages = [*asked["messages"], assistant(reply), user(question)]
    answer = "Sure, looking at that part again: the step follows from the one before it, so the answer stands."
    ev = event(t, rng, who, asked["model"], messages, dict(asked["params"]), answer)
    ev["_tag"] = "cover"
    return ev


def _probe(rng: random.Random, params: dict[str, Any], sweep: int) -> int:
    """Parameter probing: logprobs, logit_bias, n > 1, or the next step of a max_tokens sweep."""
    kind = rng.randrange(4)
    if kind == 0:
        params.update(logprobs=True, top_logprobs=5)
    elif kind == 1:
        params["logit_bias"] = {str(rng.randrange(100_000)): -100 for _ in range(3)}
    elif kind == 2:
        params["n"] = rng.choice((4, 8))
    else:
        params["max_tokens"] = _SWEEP[sweep % len(_SWEEP)]
        return sweep + 1
    return sweep


def _harvest(
    rng: random.Random,
    c: Campaign,
    who: Identity,
    item: HarvestItem,
    sys_prompt: str | None,
    t: float,
    model: str,
    params: dict[str, Any],
) -> Iterator[dict[str, Any]]:
    """The request(s) harvesting one item: one for cot/rubric, a tool-use episode for agentic."""
    spec = c.spec
    if spec.style == "agentic":
        task = (
            f"Implement the function below in solution.py and make its doctests pass.\n```python\n{item.task}```"
            if item.source == "humaneval"
            else item.task
        )
        tool_params = dict(params, tools=agentic.HARVEST_TOOLS, tool_choice="auto")
        for messages, reply, finish in agentic.episode(rng, task, item.answer, agentic.HARVEST_TOOLS, sys_prompt, 5):
            ev = event(t, rng, who, model, messages, dict(tool_params), reply, finish)
            yield ev
            t += generation_latency(rng, ev["response"]["usage"]["completion_tokens"]) + rng.uniform(0.5, 6.0)
        return
    if spec.style == "rubric":
        messages, reply = rubric_request(rng, item, rng.choice(c.rubrics), sys_prompt)
    elif rng.random() < spec.cot_fraction:
        messages, reply = cot_request(rng, item, c.elicitor, sys_prompt)
    else:
        messages, reply = plain_request(rng, item, sys_prompt)
    yield event(t, rng, who, model, messages, params, reply)
