"""`cuirass lab detect --adaptive ROUNDS`: an attacker who reads the detector's reasons and changes course.

Each round the campaign runs with the attacker's current strategy beside the same benign population,
Cuirass replays the test set causally at the threshold calibrated once on benign half A (the path of
`cuirass lab detect`), and the round is measured: recall, leakage, benign FPR and what each harvested
answer cost the attacker. The networks Cuirass knows at the end of a round are remembered by the next round's
detector (Detector.remember; `remember=False` starts every round from an empty one), so an account that
carries a known network's signature is attached from its first requests. Then the attacker reads every flagged account's reasons (white-box, the worst
case) and adapts: new wording, slower human timing, more cover, fresh infrastructure, fewer requests per
account. It keeps its appetite: the next round brings as many accounts as it needs to ask for as many
answers as the first round did, so whatever evasion costs shows up as accounts, cards, addresses and
time per harvested answer.

The moves follow what the 2026 provider reports describe operators doing after takedowns (DESIGN.md
"Threat model"): rotating to fresh accounts and payment instruments, spreading requests thinner,
mixing in ordinary traffic and rewording their prompt templates.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import sys
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from cuirass.lab import detect_eval, plots
from cuirass.lab.assess import Verdicts, assess
from cuirass.lab.split import split
from cuirass.lab.traffic import CampaignSpec, TrafficConfig, generate
from cuirass.lab.traffic.clock import DAY

if TYPE_CHECKING:
    from cuirass.detect.campaigns import KnownNetwork

# What a reason tells the attacker to change: a move, and the words in a reason that call for it.
# A reason may call for several moves; one that matches none still counts against the campaign (volume).
MOVES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(pattern, re.IGNORECASE))
    for name, pattern in (
        ("rephrase", r"template|phras|wording|step-by-step|reasoning|rubric|final answer|duplicate|tpl:|sys:"),
        ("slow down", r"pacing|around the clock|timing|hour|synchron|burst|\brate\b"),
        ("fresh infrastructure", r"network|address|\bip\b|card|payment|user agent|linked|campaign|sign-up|new acc"),
        ("more cover", r"single-shot|follow-up|regenerat|focus|coverage|topic|distribution|mmd|population|habit"),
        ("stop probing", r"probes|logprob|logit"),
        ("no pivot", r"new model"),
    )
)
ACT_ON = 0.2  # a move is made when at least this share of the flagged accounts gave a reason for it


@dataclasses.dataclass(frozen=True)
class AdaptConfig:
    """The world (benign population, window, seed), the starting campaign and the number of rounds."""

    traffic: TrafficConfig
    start: CampaignSpec
    rounds: int = 4
    fpr: float = 0.001
    max_accounts: int = 20_000
    remember: bool = True  # each round's detector remembers the networks known at the end of the last


def moves_for(reasons: dict[str, list[str]]) -> dict[str, float]:
    """Share of the flagged accounts (keys of `reasons`) that gave at least one reason calling for each move."""
    counts: Counter[str] = Counter()
    for texts in reasons.values():
        called = {name for text in texts for name, pattern in MOVES if pattern.search(text)}
        counts.update(called | {"fewer requests per account"})
    n = max(len(reasons), 1)
    return {name: counts[name] / n for name in [m for m, _ in MOVES] + ["fewer requests per account"]}


def per_account(spec: CampaignSpec, days: float) -> float:
    """Harvest requests one account of the campaign asks for, nominally (cover and follow-ups excluded)."""
    active = days * max(1.0 - spec.start - spec.ramp / 2, 0.05)
    sent = min(spec.requests or math.inf, spec.rate_per_day * active)
    return max(sent * (1.0 - spec.benign_mix) / (1.0 + spec.follow_up), 0.1)


def adapt(
    spec: CampaignSpec, calls: dict[str, float], round_no: int, days: float = 14.0, recall: float = 1.0
) -> tuple[CampaignSpec, list[str]]:
    """The next strategy after reading the reasons: the moves made, each as far as it can still go.

    Unseen (recall under ACT_ON), the attacker gets greedier instead: half as many requests again per
    account at a pace half again as fast, so fewer accounts; that is how it finds where the detector's line is."""
    made = [name for name, share in calls.items() if share >= ACT_ON]
    changes: dict[str, Any] = {}
    if recall < ACT_ON:
        current = min(spec.requests or math.inf, math.ceil(spec.rate_per_day * days))
        greedier = dataclasses.replace(spec, requests=round(current * 1.5) + 1, rate_per_day=spec.rate_per_day * 1.5)
        return greedier, ["more requests per account"]
    if "rephrase" in made:
        changes.update(
            phrasing="heldout",
            wording_seed=spec.wording_seed + 1000 * round_no + 1,
            paraphrase=2,
            wordings=max(spec.wordings, 3),
            cot_fraction=max(0.2, spec.cot_fraction * 0.6),
            system_prompt_reuse=0.0,
        )
    if "slow down" in made:
        changes.update(timing="human", rate_per_day=max(0.5, spec.rate_per_day * 0.5), jitter=max(spec.jitter, 0.5))
    if "fresh infrastructure" in made:
        changes.update(shared_infra=0.0, creation_burst=0.0, addresses="home", agent="browser")
    if "more cover" in made:
        changes.update(benign_mix=min(0.8, spec.benign_mix + 0.2), follow_up=min(0.8, spec.follow_up + 0.3))
    if "stop probing" in made:
        changes["probe"] = 0.0
    if "no pivot" in made:
        changes["pivot"] = False
    if "fewer requests per account" in made:
        current = min(spec.requests or math.inf, math.ceil(spec.rate_per_day * days))
        changes["requests"] = max(4, round(current * 0.6))
    return dataclasses.replace(spec, **changes), made


def run(config: AdaptConfig, out_dir: str | Path, progress: bool = True) -> dict[str, Any]:
    """Play the rounds; write adapt.json, adapt.md and adapt.png to out_dir; return the results."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    spec, made, target = config.start, ["(start)"], None
    observed_ratio = 1.0  # harvest requests sent per account / the nominal estimate, learnt each round
    calibration: dict[str, Any] | None = None
    known: list[KnownNetwork] = []
    rows: list[dict[str, Any]] = []
    bar = _bar(config.rounds, progress)
    for r in range(1, config.rounds + 1):
        if target is not None:  # as many accounts as it takes to ask for round 1's harvest again
            need = target / (per_account(spec, config.traffic.days) * observed_ratio)
            spec = dataclasses.replace(spec, accounts=int(min(config.max_accounts, max(1, math.ceil(need)))))
        row, verdicts, calibration, sent, networks = _round(
            config, spec, r, out / f"round-{r}", calibration, known, progress
        )
        if config.remember:
            known = networks
        row["moves"] = made
        rows.append(row)
        target = sent if target is None else target
        if sent:  # what this strategy really yields per account, against what the attacker expected of it
            observed_ratio = sent / spec.accounts / per_account(spec, config.traffic.days)
        calls = moves_for({a: verdicts.reasons.get(a, []) for a in row.pop("_flagged")})
        row["reason_shares"] = {k: round(v, 3) for k, v in calls.items() if v}
        spec, made = adapt(spec, calls, r, config.traffic.days, row["recall"])
        if bar is not None:
            bar.set_postfix(recall=f"{row['recall']:.0%}", leakage=f"{row['leakage']:.0%}")
            bar.update(1)
    if bar is not None:
        bar.close()
    results = {
        "config": {
            **config.traffic.to_dict(),
            "start": config.start.to_dict(),
            "rounds": config.rounds,
            "remember": config.remember,
        },
        "fpr": config.fpr,
        "threshold": calibration["threshold"] if calibration else None,
        "rounds": rows,
    }
    (out / "adapt.json").write_text(json.dumps(detect_eval.finite(results), indent=2))
    (out / "adapt.md").write_text("\n".join(table(rows)) + "\n")
    plots.rounds(rows, out / "adapt.png")
    return results


def _round(
    config: AdaptConfig,
    spec: CampaignSpec,
    r: int,
    out: Path,
    calibration: dict[str, Any] | None,
    known: list[KnownNetwork],
    progress: bool,
) -> tuple[dict[str, Any], Verdicts, dict[str, Any], int, list[KnownNetwork]]:
    """One round: generate, split, replay at the calibrated threshold (remembering the `known` networks),
    measure; also returns the networks known at the end."""
    out.mkdir(parents=True, exist_ok=True)
    traffic = dataclasses.replace(config.traffic, campaigns=(spec,))
    labels = generate(traffic, out / "traffic.jsonl", progress=progress, harvest_times=True)
    s = split(out / "traffic.jsonl", labels, out, traffic.seed, progress=progress)
    verdicts, _, networks = detect_eval.run_cuirass(
        s, config.fpr, out, progress=progress, calibration=calibration, known=known
    )
    if calibration is None:
        calibration = json.loads((out / "calibration.json").read_text())
    outcome = assess(verdicts, labels, s.test_times, (config.fpr,), 0.9)
    members = [a for c in labels["campaigns"] for a in c["accounts"] if a in s.test_times]
    flagged = [a for a in members if verdicts.flagged_at.get(a) is not None]
    cost = _resources(out / "traffic.jsonl", set(members))
    harvest_ts = labels["harvest_times"]
    sent = sum(len(harvest_ts.get(a, ())) for a in members)
    harvested = sum(_served(harvest_ts.get(a, ()), verdicts.flagged_at.get(a)) for a in members)
    campaign = outcome["campaigns"][0] if outcome["campaigns"] else {}
    per_k = 1000.0 / harvested if harvested else math.inf
    row: dict[str, Any] = {
        "round": r,
        "strategy": _describe(spec),
        "accounts": len(members),
        "requests_per_account": sum(len(s.test_times[a]) for a in members) / max(len(members), 1),
        "harvest_sent": sent,
        "recall": len(flagged) / max(len(members), 1),
        "leakage": campaign.get("leakage", math.nan),
        "benign_fpr": outcome["operating_point"]["benign_fpr"],
        "harvested": harvested,
        "per_1k_answers": {k: v * per_k for k, v in cost.items()},
        "_flagged": flagged,
    }
    for name in ("traffic.jsonl", "calibration.jsonl", "test.jsonl", "calibration.feed.jsonl", "test.feed.jsonl"):
        (out / name).unlink(missing_ok=True)  # the report and the labels stay; the bulk goes
    if progress:
        print(
            f"round {r}: {row['accounts']} accounts, recall {row['recall']:.1%}, leakage {row['leakage']:.1%}, "
            f"harvested {harvested:,} of {sent:,}",
            file=sys.stderr,
            flush=True,
        )
    return row, verdicts, calibration, sent, networks


def _served(times: Any, flagged_at: float | None) -> int:
    """Harvest requests answered before the flag (causal replay: the flagging request itself is served)."""
    ts = np.asarray(times, float)
    return len(ts) if flagged_at is None else int(np.searchsorted(np.sort(ts), flagged_at, side="right"))


def _resources(traffic: Path, members: set[str]) -> dict[str, float]:
    """What the campaign used: accounts, distinct cards and addresses, and account-days (first to last request)."""
    cards: set[str] = set()
    ips: set[str] = set()
    span: dict[str, list[float]] = {}
    with open(traffic, "rb") as fh:
        for line in fh:
            ev = orjson.loads(line)
            if ev["account"] not in members:
                continue
            cards.add(ev["payment_fingerprint"])
            ips.add(ev["ip"])
            first_last = span.setdefault(ev["account"], [ev["ts"], ev["ts"]])
            first_last[1] = ev["ts"]
    days = sum(max(b - a, 3600.0) for a, b in span.values()) / DAY  # an account used at all costs an hour
    return {"accounts": float(len(members)), "cards": float(len(cards)), "addresses": float(len(ips)), "days": days}


def _describe(spec: CampaignSpec) -> str:
    requests = f", <= {spec.requests} requests" if spec.requests else ""
    return (
        f"{spec.timing} timing at {spec.rate_per_day:.3g}/day{requests}, cover {spec.benign_mix:.0%}, "
        f"follow-ups {spec.follow_up:.0%}, {spec.phrasing} wording (paraphrase {spec.paraphrase}), "
        f"shared infra {spec.shared_infra:.0%}, {spec.addresses} addresses, {spec.agent} agents"
    )


def table(rows: list[dict[str, Any]]) -> list[str]:
    """The per-round table (markdown) with the strategies underneath."""
    lines = [
        "| round | moves | accounts | requests / account | recall | leakage | benign FPR | harvested answers "
        "| per 1k harvested: accounts | cards | addresses | account-days |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        c = row["per_1k_answers"]
        lines.append(
            f"| {row['round']} | {', '.join(row['moves'])} | {row['accounts']:,} | {row['requests_per_account']:.1f} "
            f"| {row['recall']:.1%} | {row['leakage']:.1%} | {row['benign_fpr']:.2%} | "
            f"{row['harvested']:,} of {row['harvest_sent']:,} | {c['accounts']:.1f} | {c['cards']:.1f} | "
            f"{c['addresses']:.1f} | {c['days']:.1f} |"
        )
    lines.append("")
    lines += [f"- round {row['round']}: {row['strategy']}" for row in rows]
    return lines


def _bar(total: int, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(desc="rounds", total=total, unit="round")
