"""The traffic generator: plan every actor, merge their event streams by time, stream them to a file.

Output is the event log (JSON lines, in event-time order) plus a ground-truth sidecar
(`<out>.labels.json`) that says which account is benign and which campaign each attacker
belongs to. Labels never appear in the events. Same config and seed -> byte-identical files.
"""

from __future__ import annotations

import dataclasses
import heapq
import operator
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from cuirass.lab.traffic import attacker, backends, benign
from cuirass.lab.traffic.campaigns import PRESETS, CampaignSpec
from cuirass.lab.traffic.clock import DAY, DEFAULT_START, Window
from cuirass.lab.traffic.sources import sharegpt
from cuirass.lab.traffic.world import World

DEFAULT_CAMPAIGNS = (
    dataclasses.replace(PRESETS["naive"], accounts=1),
    dataclasses.replace(PRESETS["hydra"], accounts=200),
    dataclasses.replace(PRESETS["stealth"], accounts=200),
    dataclasses.replace(PRESETS["agentic"], accounts=200),
    dataclasses.replace(PRESETS["rubric"], accounts=200),
)


@dataclasses.dataclass(frozen=True)
class TrafficConfig:
    """Everything that determines the generated traffic."""

    seed: int = 0
    benign_accounts: int = 1000
    campaigns: tuple[CampaignSpec, ...] = DEFAULT_CAMPAIGNS
    days: float = 14.0
    start: float = DEFAULT_START
    release: float = 0.55  # when the new model is released, as a fraction of the window
    hard_negatives: int = 0  # extra benign accounts that look heavy or alike: large NAT organisations, apps

    def world(self) -> World:
        window = Window(self.start, self.days, self.start + self.release * self.days * DAY)
        return World(self.seed, window)

    def to_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "benign_accounts": self.benign_accounts,
            "days": self.days,
            "start": self.start,
            "release": self.release,
            "hard_negatives": self.hard_negatives,
            "campaigns": [c.to_dict() for c in self.campaigns],
        }


def labels_path(out: str | Path) -> Path:
    """Where the ground truth of `out` lives: FILE.jsonl -> FILE.labels.json."""
    out = Path(out)
    return out.with_name(out.name.removesuffix(".jsonl") + ".labels.json")


def generate(
    config: TrafficConfig, out: str | Path, progress: bool = False, harvest_times: bool = False
) -> dict[str, Any]:
    """Write the traffic to `out` (and its labels beside it); return the labels.

    With `harvest_times`, the labels also say when each attacker account was sent a harvested answer
    (`harvest_times`: account -> times), which is what an attacker's yield is counted from."""
    world = config.world()
    pool, decoy = sharegpt()
    order = list(range(len(pool)))
    world.rng("deck").shuffle(order)
    labels: dict[str, Any] = {
        "config": config.to_dict(),
        "window": {"start": world.window.start, "end": world.window.end, "release": world.window.release},
        "models": list(world.models),
        "new_model": world.new_model,
        "accounts": {},
        "campaigns": [],
    }
    accounts = labels["accounts"]
    streams: list[Iterator[dict[str, Any]]] = []
    corporate = config.hard_negatives - config.hard_negatives // 150 * 2
    for person in benign.plan_people(world, config.benign_accounts, len(pool), corporate):
        accounts[person.who.account] = _label("benign", person.kind)
        streams.append(benign.stream(world, person, pool, order))
    for backend in backends.plan_backends(world, config.benign_accounts, config.hard_negatives):
        accounts[backend.who.account] = _label("benign", backend.kind)
        streams.append(backends.stream(world, backend, pool))
    for index, spec in enumerate(config.campaigns, 1):
        for campaign in attacker.plan(world, spec, index):
            labels["campaigns"].append(
                {
                    "id": campaign.id,
                    "kind": spec.kind,
                    "held_out": spec.held_out,
                    "accounts": [m.account for m in campaign.members],
                    "spec": spec.to_dict(),
                    "shared": campaign.shared,
                }
            )
            for j, member in enumerate(campaign.members):
                accounts[member.account] = _label("attack", spec.kind, campaign.id, spec.held_out)
                streams.append(attacker.stream(world, campaign, j, decoy))
    counts: Counter[str] = Counter()
    covers: Counter[str] = Counter()
    harvested: dict[str, list[float]] = {}
    bar = _progress(progress)
    with open(out, "wb") as fh:
        buffer: list[bytes] = []
        for ev in heapq.merge(*streams, key=operator.itemgetter("ts")):
            tag = ev.pop("_tag", None)
            counts[ev["account"]] += 1
            if tag == "cover":
                covers[ev["account"]] += 1
            elif tag == "harvest" and harvest_times:
                harvested.setdefault(ev["account"], []).append(ev["ts"])
            buffer.append(orjson.dumps(ev, option=orjson.OPT_APPEND_NEWLINE))
            if len(buffer) >= 4096:
                fh.write(b"".join(buffer))
                buffer.clear()
                if bar is not None:
                    bar.update(4096)
        fh.write(b"".join(buffer))
    if bar is not None:
        bar.close()
    for account, info in accounts.items():
        info["events"] = counts.get(account, 0)
        if info["label"] == "attack":
            info["cover"] = covers.get(account, 0)
    labels["events"] = sum(counts.values())
    if harvest_times:
        labels["harvest_times"] = harvested
    labels_path(out).write_bytes(orjson.dumps(labels, option=orjson.OPT_INDENT_2))
    return labels


def _label(label: str, kind: str, campaign: str | None = None, held_out: bool = False) -> dict[str, Any]:
    return {"label": label, "kind": kind, "campaign": campaign, "held_out": held_out}


def _progress(enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(desc="generate", unit="ev", unit_scale=True, mininterval=1.0)
