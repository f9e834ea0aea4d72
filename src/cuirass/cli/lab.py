"""`cuirass lab ...`: generate traffic and run the evaluations (more subcommands join the group)."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import click

from cuirass.lab.traffic import PRESETS, CampaignSpec, TrafficConfig, generate, labels_path, parse_campaign
from cuirass.lab.traffic.generate import DEFAULT_CAMPAIGNS

if TYPE_CHECKING:
    from cuirass.lab.detect_eval import EvalConfig

T = TypeVar("T")


def _given(value: T | None, default: T) -> T:
    """An option's value when it was given (not None), else the config's."""
    return default if value is None else value


@click.group()
def lab() -> None:
    """Synthetic traffic and measurements of detection, defenses and proof."""


def _campaign(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> tuple[CampaignSpec, ...]:
    try:
        return tuple(parse_campaign(v) for v in values)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@lab.command("traffic")
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Events JSONL to write (ground truth goes to FILE.labels.json beside it).",
)
@click.option("--seed", default=0, show_default=True, type=int)
@click.option(
    "--benign-accounts",
    default=1000,
    show_default=True,
    type=click.IntRange(0, 1_000_000),
    help="Benign people; app backends are added in proportion (a few per thousand).",
)
@click.option(
    "--campaign",
    "campaigns",
    multiple=True,
    callback=_campaign,
    metavar="KIND:ACCOUNTS[:k=v,...]",
    help=f"Attack campaign (repeatable). Kinds: {', '.join(PRESETS)}. Default: "
    + " ".join(f"{c.kind}:{c.accounts}" for c in DEFAULT_CAMPAIGNS)
    + ". Overrides, e.g. stealth:500:benign_mix=0.8,paraphrase=2.",
)
@click.option("--days", default=14.0, show_default=True, type=click.FloatRange(0.1, 365))
@click.option("--no-campaigns", is_flag=True, help="Benign traffic only.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Progress bar on stderr.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def traffic(
    out: Path,
    seed: int,
    benign_accounts: int,
    campaigns: tuple[CampaignSpec, ...],
    days: float,
    no_campaigns: bool,
    progress: bool,
    as_json: bool,
) -> None:
    """Generate seeded, deterministic traffic: benign accounts plus attack campaigns."""
    if no_campaigns:
        campaigns = ()
    elif not campaigns:
        campaigns = DEFAULT_CAMPAIGNS
    config = TrafficConfig(seed=seed, benign_accounts=benign_accounts, campaigns=campaigns, days=days)
    labels = generate(config, out, progress=progress)
    kinds = Counter((info["label"], info["kind"]) for info in labels["accounts"].values())
    summary = {
        "events": labels["events"],
        "out": str(out),
        "labels": str(labels_path(out)),
        "accounts": {f"{label}/{kind}": n for (label, kind), n in sorted(kinds.items())},
        "campaigns": len(labels["campaigns"]),
    }
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    click.echo(f"wrote {summary['events']:,} events to {out} (ground truth: {summary['labels']})")
    for key, n in summary["accounts"].items():
        click.echo(f"  {key:24s} {n:>7,} accounts")


@lab.command("detect")
@click.option("--quick", is_flag=True, help="Small config (300 benign, campaigns of 30, 4 days): about a minute.")
@click.option(
    "--out",
    "out",
    default="lab-out/detect",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for traffic, results and plots.",
)
@click.option("--seed", default=0, show_default=True, type=int)
@click.option(
    "--fpr",
    default=0.001,
    show_default=True,
    type=click.FloatRange(0.0, 1.0, min_open=True, max_open=True),
    help="Benign-account FPR to calibrate at.",
)
@click.option(
    "--honeypot-python",
    default=None,
    type=click.Path(dir_okay=False),
    help="Interpreter of the honeypotllm venv (default $CUIRASS_HONEYPOT_PYTHON or .venv-peers/honeypotllm).",
)
@click.option("--benign-accounts", type=click.IntRange(2, 1_000_000), help="Override the config's benign people.")
@click.option(
    "--campaign",
    "campaigns",
    multiple=True,
    callback=_campaign,
    metavar="KIND:ACCOUNTS[:k=v,...]",
    help="Replace the config's campaigns (repeatable), e.g. to test an unseen variant.",
)
@click.option("--days", type=click.FloatRange(0.1, 365), help="Override the config's window.")
@click.option(
    "--vary",
    is_flag=True,
    help="Draw each campaign's parameters from its kind's ranges (by --seed), e.g. thin, stealth_chat, agentic_cloud.",
)
@click.option(
    "--hard-negatives",
    type=click.IntRange(0, 1_000_000),
    default=0,
    show_default=True,
    help="Extra benign accounts that look heavy or alike: large NAT organisations, tutoring and chat apps.",
)
@click.option(
    "--adaptive",
    "rounds",
    type=click.IntRange(1, 50),
    default=None,
    metavar="ROUNDS",
    help="Adaptive attacker: the one --campaign (default hydra) reads its flagged accounts' reasons and changes "
    "course each round; writes adapt.md, adapt.json, adapt.png.",
)
@click.option(
    "--remember/--forget",
    default=True,
    show_default=True,
    help="With --adaptive: each round's detector remembers the networks known at the end of the last round.",
)
@click.option("--progress/--no-progress", default=True, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON instead of the tables.")
def detect(
    quick: bool,
    out: Path,
    seed: int,
    fpr: float,
    honeypot_python: str | None,
    benign_accounts: int | None,
    campaigns: tuple[CampaignSpec, ...],
    days: float | None,
    vary: bool,
    hard_negatives: int,
    rounds: int | None,
    remember: bool,
    progress: bool,
    as_json: bool,
) -> None:
    """Evaluate detection: calibrate on benign half A, replay the rest, compare with honeypotllm.

    With --adaptive ROUNDS, play an attacker who adapts to the detector's reasons instead."""
    import dataclasses
    import random

    from cuirass.lab import detect_eval, summary
    from cuirass.lab.traffic.campaigns import vary as vary_spec

    config = detect_eval.quick_config(seed) if quick else detect_eval.full_config(seed)
    if vary:
        campaigns = tuple(vary_spec(c, random.Random(f"{seed}:vary:{i}")) for i, c in enumerate(campaigns))
    traffic = dataclasses.replace(
        config.traffic,
        benign_accounts=_given(benign_accounts, config.traffic.benign_accounts),
        campaigns=campaigns or config.traffic.campaigns,
        days=_given(days, config.traffic.days),
        hard_negatives=hard_negatives,
    )
    config = dataclasses.replace(config, fpr=fpr, traffic=traffic)
    if rounds is not None:
        _adaptive(config, campaigns, rounds, quick, out, progress, as_json, remember)
        return
    try:
        results = detect_eval.run(config, out, honeypot_python=honeypot_python, progress=progress)
    except (ImportError, FileNotFoundError, RuntimeError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps(detect_eval.finite(results), indent=2))
        return
    click.echo("\n".join(summary.headline(results)))
    click.echo("")
    click.echo("\n".join(summary.by_campaign_kind(results)))
    hard = results["detectors"]["cuirass"]["hard_negatives"]
    if hard["accounts"]:
        click.echo(
            f"\nhard negatives ({', '.join(hard['kinds'])}): {hard['flagged']}/{hard['accounts']} flagged "
            f"({hard['fpr']:.2%})"
        )
    click.echo(f"\nfull report: {out / 'summary.md'}  (results.json, roc.png, leakage-*.png)", file=sys.stdout)


def _adaptive(
    config: EvalConfig,
    campaigns: tuple[CampaignSpec, ...],
    rounds: int,
    quick: bool,
    out: Path,
    progress: bool,
    as_json: bool,
    remember: bool = True,
) -> None:
    """`lab detect --adaptive`: the rounds, then the per-round table and where the files are."""
    import dataclasses

    from cuirass.lab import adapt, detect_eval

    if len(campaigns) > 1:
        raise click.BadParameter("--adaptive plays one campaign: give at most one --campaign", param_hint="--campaign")
    start = campaigns[0] if campaigns else dataclasses.replace(PRESETS["hydra"], accounts=30 if quick else 300)
    plan = adapt.AdaptConfig(config.traffic, start, rounds=rounds, fpr=config.fpr, remember=remember)
    try:
        results = adapt.run(plan, out, progress=progress)
    except (ImportError, FileNotFoundError, RuntimeError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps(detect_eval.finite(results), indent=2))
        return
    click.echo("\n".join(adapt.table(results["rounds"])))
    click.echo(f"\nfull report: {out / 'adapt.md'}  (adapt.json, adapt.png, round-N/report.json)")


@lab.command("train-reference")
@click.option(
    "--out",
    "out",
    default="lab-out/reference-model",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Writes OUT/reference, OUT/decoy, OUT/summary.json.",
)
@click.option("--steps", default=None, type=click.IntRange(1), help="Training steps (default 4000; --quick: 8).")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option(
    "--threads",
    default=None,
    type=click.IntRange(1),
    help="Torch threads (default 2; 1 can be faster on a busy 2-core box).",
)
@click.option("--quick", is_flag=True, help="A tiny model for a few steps: checks the pipeline in seconds.")
@click.option("--install", is_flag=True, help="Copy the result into the package as the built-in reference and decoy.")
@click.option("--progress/--no-progress", default=True, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def train_reference(
    out: Path,
    steps: int | None,
    seed: int,
    threads: int | None,
    quick: bool,
    install: bool,
    progress: bool,
    as_json: bool,
) -> None:
    """Train the built-in reference model and its decoy on procedural word problems, then evaluate both."""
    import dataclasses
    import shutil

    from cuirass.lab.reference.train import PACKAGE_MODELS, TrainConfig, train

    config = TrainConfig.quick(seed) if quick else TrainConfig(seed=seed)
    changes = {k: v for k, v in (("steps", steps), ("threads", threads)) if v is not None}
    if "steps" in changes and config.decoy_step >= changes["steps"]:
        changes["decoy_step"] = max(1, changes["steps"] // 10)
    summary = train(dataclasses.replace(config, **changes), out, progress=progress)
    if install:
        for name in ("reference", "decoy"):
            if (out / name).is_dir():
                shutil.rmtree(PACKAGE_MODELS / name, ignore_errors=True)
                shutil.copytree(out / name, PACKAGE_MODELS / name)
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    click.echo(
        f"trained {summary['params']:,} parameters for {summary['config']['steps']} steps in "
        f"{summary['train_seconds']:.0f} s (total with evaluation {summary['total_seconds']:.0f} s)"
    )
    for name in ("reference", "decoy"):
        if name in summary:
            acc, size = summary[name]["accuracy"], summary[name]["bytes"]
            sampled = {k: v for k, v in acc.items() if k.startswith("t")}
            click.echo(
                f"  {name:9s} step {summary[name]['step']:>5}  held-out accuracy: greedy {acc['greedy']:.1%}, "
                + ", ".join(f"T={k[1:]} {v:.1%}" for k, v in sampled.items())
                + f" (n={acc['n']})  size {size / 1e6:.1f} MB  -> {out / name}"
            )
            others = {k: v for k, v in acc.items() if k.startswith(("everyday", "off-topic s"))}
            click.echo("            " + ", ".join(f"{k} {v:.1%}" for k, v in others.items()))


@lab.command("distill")
@click.option("--quick", is_flag=True, help="The test suite's small run (minutes): A, B, D and four defenses alone.")
@click.option(
    "--mid", is_flag=True, help="Every condition at a fifth of the full budget (400 solutions each from 8 accounts)."
)
@click.option(
    "--out",
    "out",
    default="lab-out/distill",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for harvests, results and plots.",
)
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--teacher", default=None, help="Teacher: a Hugging Face model directory (default builtin:reference).")
@click.option("--decoy", default=None, help="Decoy model directory (default builtin:decoy).")
@click.option("--task", default=None, help="What is harvested: reference (default), gsm8k:DIR or jsonl:TRAIN,TEST.")
@click.option(
    "--student-config",
    default=None,
    type=click.Path(exists=True),
    help="A Hugging Face config.json (or its directory) for the student, instead of the size flags.",
)
@click.option("--student-hidden", type=click.IntRange(8), help="Student width (reference family).")
@click.option("--student-layers", type=click.IntRange(1), help="Student depth.")
@click.option(
    "--condition",
    "conditions",
    multiple=True,
    metavar="NAME",
    help="Run only these (repeatable): A, B, C (every defense alone), C:<defense>, D, E.",
)
@click.option("--queries", type=click.IntRange(1), help="Harvested solutions per condition (attacker budget).")
@click.option("--accounts", type=click.IntRange(1), help="Campaign accounts.")
@click.option("--steps", type=click.IntRange(1), help="Student training steps.")
@click.option("--eval-n", type=click.IntRange(1), help="Held-out problems for the students' accuracy.")
@click.option("--audit-queries", type=click.IntRange(1), help="Probe prompts each student's audit sends.")
@click.option(
    "--answers-only/--no-answers-only",
    default=True,
    show_default=True,
    help="Also train each condition a student on its harvest's answers without their reasoning traces.",
)
@click.option("--progress/--no-progress", default=True, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON instead of the table.")
def distill(
    quick: bool,
    mid: bool,
    out: Path,
    seed: int,
    teacher: str | None,
    decoy: str | None,
    task: str | None,
    student_config: str | None,
    student_hidden: int | None,
    student_layers: int | None,
    conditions: tuple[str, ...],
    queries: int | None,
    accounts: int | None,
    steps: int | None,
    eval_n: int | None,
    audit_queries: int | None,
    answers_only: bool,
    progress: bool,
    as_json: bool,
) -> None:
    """Distill the protected model through the gateway under each condition; measure what the copy is worth."""
    import dataclasses
    import signal

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind, so the lab's gateways are stopped

    from cuirass.lab.distill import report
    from cuirass.lab.distill.config import DistillConfig
    from cuirass.lab.distill.run import run

    config = DistillConfig.quick(seed) if quick else DistillConfig.mid(seed) if mid else DistillConfig.full(seed)
    student = dataclasses.replace(
        config.student,
        config_path=_given(student_config, config.student.config_path),
        hidden=_given(student_hidden, config.student.hidden),
        layers=_given(student_layers, config.student.layers),
    )
    config = dataclasses.replace(
        config,
        student=student,
        teacher=_given(teacher, config.teacher),
        decoy=_given(decoy, config.decoy),
        task=_given(task, config.task),
        conditions=conditions or config.conditions,
        campaign_queries=_given(queries, config.campaign_queries),
        campaign_accounts=_given(accounts, config.campaign_accounts),
        train_steps=_given(steps, config.train_steps),
        eval_n=_given(eval_n, config.eval_n),
        audit_queries=_given(audit_queries, config.audit_queries),
        answers_only=answers_only,
    )
    try:
        results = run(config, out, progress=progress)
    except (ValueError, RuntimeError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        from cuirass.lab.detect_eval import finite

        click.echo(json.dumps(finite(results), indent=2, default=str))
        return
    click.echo("\n".join([*report.table(results), "", *report.benign_table(results)]))
    click.echo(f"\nfull report: {out / 'summary.md'}  (results.json, harvest.jsonl, accuracy.png, audit.png)")


COMMANDS = [lab]
