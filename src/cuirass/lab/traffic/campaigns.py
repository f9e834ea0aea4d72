"""Attack campaign parameters and the named presets (`KIND:ACCOUNTS[:key=value,...]` on the CLI).

A campaign is a set of accounts run by one operator to harvest outputs. Presets follow the
threat model in docs/architecture.md; `agentic` and `rubric` are held out: the detector's authors did not
tune on them, so they measure generalisation. The VARIANTS (issue 19) are the weak spots: a thin network,
a stealthy chat-and-harvest campaign and tool-use harvesting from cloud hosts, all built from the held-out
slice of the tasks and from wording no other preset uses; `vary` draws their parameters per seed, so an
evaluation covers a range of them instead of one point.
"""

from __future__ import annotations

import dataclasses
import random
from typing import Any


@dataclasses.dataclass(frozen=True, slots=True)
class CampaignSpec:
    """What one campaign does. Fractions are in [0, 1]; times are fractions of the window."""

    kind: str
    accounts: int = 1
    sources: tuple[tuple[str, float], ...] = (("gsm8k", 0.5), ("humaneval", 0.2), ("seed_tasks", 0.3))
    style: str = "cot"  # cot | rubric | agentic
    rate_per_day: float = 40.0  # request slots per account per day, cover included (agentic: an episode)
    cot_fraction: float = 1.0  # share of harvest prompts carrying a reasoning instruction
    paraphrase: int = 0  # 0 fixed wording, 1 a few wordings, 2 per-request paraphrase
    system_prompt_reuse: float = 0.0  # share of harvest requests with the campaign's system prompt
    shared_infra: float = 0.0  # share of accounts on shared IP prefixes / payment cards / user agent
    benign_mix: float = 0.0  # share of requests that are benign-looking cover traffic
    timing: str = "poisson"  # uniform | poisson | balanced | human
    jitter: float = 0.2  # relative jitter of request times
    creation_burst: float = 0.0  # share of accounts created in one burst just before the start
    pivot: bool = False  # move to the newly released model soon after release
    pivot_hours: float = 24.0  # ... within this many hours
    probe: float = 0.0  # share of harvest requests that probe parameters
    start: float = 0.1  # campaign start, as a fraction of the window
    ramp: float = 0.0  # accounts join over this fraction of the window after the start
    independent: bool = False  # every account is its own one-account campaign (lone scrapers)
    held_out: bool = False
    requests: int = 0  # most requests one account sends, cover included (0: no cap, the rate runs to the end)
    phrasing: str = "lab"  # lab | heldout: the wording pool (heldout: never used by the lab's presets)
    wordings: int = 0  # base wordings the network shares (0: the paraphrase level's default)
    wording_seed: int = 0  # which wordings it draws: a new value is a new phrasing
    follow_up: float = 0.0  # share of harvest requests followed by a turn that reads the answer
    addresses: str = "auto"  # auto (proxies or homes by timing) | home (one home address each) | cloud
    agent: str = "sdk"  # sdk (a common client library) | browser (each account its own browser build)

    def __post_init__(self) -> None:
        for name in (
            "cot_fraction",
            "system_prompt_reuse",
            "shared_infra",
            "benign_mix",
            "creation_burst",
            "probe",
            "start",
            "ramp",
            "follow_up",
        ):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"campaign {self.kind}: {name} must be in [0, 1], got {value}")
        if not 1 <= self.accounts <= 20_000:
            raise ValueError(f"campaign {self.kind}: accounts must be in 1..20000, got {self.accounts}")
        if self.rate_per_day <= 0:
            raise ValueError(f"campaign {self.kind}: rate_per_day must be positive")
        if self.style not in ("cot", "rubric", "agentic"):
            raise ValueError(f"campaign {self.kind}: unknown style {self.style!r}")
        if self.timing not in ("uniform", "poisson", "balanced", "human"):
            raise ValueError(f"campaign {self.kind}: unknown timing {self.timing!r}")
        if self.paraphrase not in (0, 1, 2):
            raise ValueError(f"campaign {self.kind}: paraphrase must be 0, 1 or 2")
        for name, allowed in (
            ("phrasing", ("lab", "heldout")),
            ("addresses", ("auto", "home", "cloud")),
            ("agent", ("sdk", "browser")),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(f"campaign {self.kind}: {name} must be one of {', '.join(allowed)}")
        if self.requests < 0 or self.wordings < 0:
            raise ValueError(f"campaign {self.kind}: requests and wordings must be >= 0")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


PRESETS: dict[str, CampaignSpec] = {
    # One account, one script, enumerating datasets around the clock with one fixed prompt.
    "naive": CampaignSpec(
        "naive",
        rate_per_day=1500,
        paraphrase=0,
        system_prompt_reuse=1.0,
        timing="uniform",
        jitter=0.2,
        creation_burst=1.0,
        pivot=True,
        pivot_hours=2,
        probe=0.05,
        start=0.15,
        independent=True,
    ),
    # A proxy reseller's cluster: shared templates and infrastructure, each account under rate
    # limits, requests load-balanced round-robin across accounts, accounts created in bursts.
    "hydra": CampaignSpec(
        "hydra",
        rate_per_day=25,
        cot_fraction=0.9,
        paraphrase=1,
        system_prompt_reuse=0.8,
        shared_infra=0.8,
        benign_mix=0.1,
        timing="balanced",
        jitter=0.3,
        creation_burst=0.7,
        pivot=True,
        pivot_hours=6,
        probe=0.02,
        start=0.35,
    ),
    # Careful operator: half cover traffic, per-request paraphrase, human timing, clean infrastructure.
    "stealth": CampaignSpec(
        "stealth",
        sources=(("gsm8k", 0.6), ("humaneval", 0.15), ("seed_tasks", 0.25)),
        rate_per_day=12,
        cot_fraction=0.7,
        paraphrase=2,
        benign_mix=0.5,
        timing="human",
        jitter=0.5,
        pivot=True,
        pivot_hours=24,
        start=0.3,
        ramp=0.2,
    ),
    # Held out: harvesting agent trajectories (tool calls, multi-step) on code and instruction tasks.
    "agentic": CampaignSpec(
        "agentic",
        sources=(("humaneval", 0.6), ("seed_tasks", 0.4)),
        style="agentic",
        rate_per_day=6,
        paraphrase=1,
        system_prompt_reuse=0.9,
        shared_infra=0.4,
        benign_mix=0.2,
        timing="poisson",
        jitter=0.5,
        creation_burst=0.3,
        pivot=True,
        pivot_hours=12,
        start=0.3,
        ramp=0.1,
        held_out=True,
    ),
    # Held out: rubric-grading requests (a judge's reasoning on candidate answers), human-ish timing.
    "rubric": CampaignSpec(
        "rubric",
        sources=(("gsm8k", 0.8), ("seed_tasks", 0.2)),
        style="rubric",
        rate_per_day=15,
        paraphrase=1,
        system_prompt_reuse=0.5,
        shared_infra=0.3,
        benign_mix=0.25,
        timing="human",
        jitter=0.5,
        creation_burst=0.5,
        pivot=True,
        pivot_hours=18,
        start=0.3,
        ramp=0.1,
        held_out=True,
    ),
}


_HELDOUT_TASKS = (("gsm8k_heldout", 0.55), ("humaneval_heldout", 0.15), ("seed_tasks_heldout", 0.3))

# The weak spots of issue 19, modelled on the provider reports of 2026 (DESIGN.md "Threat model"): proxy
# resellers keep every account under the limits and mix harvesting with ordinary traffic; agents are
# harvested from rented cloud hosts.
PRESETS.update(
    {
        # ~1,000 accounts with about a dozen requests each over two weeks, each its own home address, card and
        # browser, a few loose wordings shared across the network and paraphrased per request.
        "thin": CampaignSpec(
            "thin",
            sources=_HELDOUT_TASKS,
            rate_per_day=1.5,
            requests=12,
            cot_fraction=0.6,
            paraphrase=2,
            phrasing="heldout",
            wordings=3,
            benign_mix=0.15,
            timing="human",
            jitter=0.5,
            start=0.0,
            ramp=0.3,
            addresses="home",
            agent="browser",
            held_out=True,
        ),
        # Hundreds of accounts that chat for real (cover conversations), follow up on the answers they harvest,
        # and keep human hours; clean infrastructure.
        "stealth_chat": CampaignSpec(
            "stealth_chat",
            sources=_HELDOUT_TASKS,
            rate_per_day=10,
            cot_fraction=0.6,
            paraphrase=2,
            phrasing="heldout",
            benign_mix=0.5,
            follow_up=0.4,
            timing="human",
            jitter=0.5,
            start=0.2,
            ramp=0.3,
            addresses="home",
            held_out=True,
        ),
        # Tool-use trajectories harvested from rented cloud hosts, each account on its own host, no shared card.
        "agentic_cloud": CampaignSpec(
            "agentic_cloud",
            sources=(("humaneval_heldout", 0.6), ("seed_tasks_heldout", 0.4)),
            style="agentic",
            rate_per_day=6,
            paraphrase=1,
            phrasing="heldout",
            system_prompt_reuse=0.6,
            benign_mix=0.1,
            timing="poisson",
            jitter=0.5,
            creation_burst=0.2,
            pivot=True,
            pivot_hours=12,
            start=0.2,
            ramp=0.2,
            addresses="cloud",
            held_out=True,
        ),
    }
)
CORE = ("naive", "hydra", "stealth", "agentic", "rubric")  # the lab's default campaigns (issue 3)
VARIANTS = ("thin", "stealth_chat", "agentic_cloud")  # the weak spots of issue 19

# The range each variant's parameters are drawn from by `vary` (floats uniform, ints inclusive).
VARY: dict[str, dict[str, tuple[float, float]]] = {
    "thin": {
        "requests": (8, 16),
        "rate_per_day": (0.8, 1.6),
        "cot_fraction": (0.4, 0.9),
        "wordings": (2, 5),
        "benign_mix": (0.0, 0.3),
        "follow_up": (0.0, 0.3),
    },
    "stealth_chat": {
        "rate_per_day": (6, 14),
        "cot_fraction": (0.4, 0.9),
        "benign_mix": (0.3, 0.7),
        "follow_up": (0.2, 0.6),
    },
    "agentic_cloud": {
        "rate_per_day": (3, 9),
        "system_prompt_reuse": (0.3, 0.9),
        "benign_mix": (0.0, 0.3),
        "creation_burst": (0.0, 0.5),
    },
}


def vary(spec: CampaignSpec, rng: random.Random) -> CampaignSpec:
    """The spec with its kind's VARY parameters drawn afresh and a new wording draw (others unchanged)."""
    changes: dict[str, Any] = {"wording_seed": rng.randrange(1_000_000)}
    types = {f.name: f.type for f in dataclasses.fields(CampaignSpec)}  # "int" or "float" (postponed annotations)
    for name, (lo, hi) in VARY.get(spec.kind, {}).items():
        changes[name] = rng.randint(int(lo), int(hi)) if types[name] in (int, "int") else rng.uniform(lo, hi)
    return dataclasses.replace(spec, **changes)


def parse_campaign(arg: str) -> CampaignSpec:
    """`KIND:ACCOUNTS` or `KIND:ACCOUNTS:key=value,key=value` -> a preset with overrides."""
    parts = arg.split(":", 2)
    kind = parts[0]
    if kind not in PRESETS:
        raise ValueError(f"unknown campaign kind {kind!r}; choose from {', '.join(PRESETS)}")
    changes: dict[str, Any] = {}
    if len(parts) > 1 and parts[1]:
        try:
            changes["accounts"] = int(parts[1])
        except ValueError:
            raise ValueError(f"{arg!r}: ACCOUNTS must be an integer") from None
    if len(parts) > 2:
        fields = {f.name: f.type for f in dataclasses.fields(CampaignSpec)}
        for pair in filter(None, parts[2].split(",")):
            key, _, raw = pair.partition("=")
            if key not in fields or key in ("kind", "sources"):
                raise ValueError(f"{arg!r}: unknown or fixed campaign parameter {key!r}")
            changes[key] = _coerce(getattr(PRESETS[kind], key), raw, arg)
    return dataclasses.replace(PRESETS[kind], **changes)


def _coerce(example: Any, raw: str, arg: str) -> Any:
    try:
        if isinstance(example, bool):
            if raw.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            return raw.lower() in ("true", "1", "yes")
        return type(example)(raw)
    except ValueError:
        raise ValueError(f"{arg!r}: cannot read {raw!r} as {type(example).__name__}") from None
