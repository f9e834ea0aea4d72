"""`audit endpoint`: question a suspect model over its API and test its answers for our marks.

    probes   = harvested prompts from our event log (or a file, or the reference problems)   probes.py
    outputs  = the suspect's answers (openai client, concurrent, retried)                     suspect.py
    token    : radioactivity test (Sander et al. 2024, "Watermarking Makes Language Models Radioactive",
               arXiv:2402.14904): re-tokenise the outputs with our tokenizer, drop steps whose (context,
               token) occurs in the probe prompts, keep the steps our model is unsure about (the same
               entropy gate as generation), score each distinct context once over all outputs, count
               green windows per key: X ~ Binomial(n, gamma) under H0, exact p       (channels.py)
    text     : the lexical watermark on the same outputs (the same dedup and prompt exclusion)
    signature: the answer signature's lead-ins counted per window, exact convolution null   (channels.py)
    likelihood: with the suspect's weights (`Weights`), its log-probability of each lead-in, rank test
               per window, exact null                                                     weights.py
    canary   : planted vs never-planted canary recall, Fisher's exact test per cohort     canaries.py
    family   = every (channel, cohort, epoch) key and every canary cohort test; Holm-Bonferroni
    implicated (cohort, epoch) -> the accounts keyed to that cohort while the epoch was in force

A control endpoint (a model that never saw our outputs) goes through exactly the same questions and
tests: nothing may be implicated and its randomized p-values must look Uniform(0, 1) (KS test).

In code, `audit_endpoint(suspect, context(...), AuditOptions(...))` runs the phases in order: `questions`
(what every endpoint is asked), `_question` (ask one endpoint, score every key), `_report` (Holm over the
family, implicated accounts), then the control through the same two steps.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from cuirass import __version__
from cuirass.marks.canary_ledger import CanaryLedger
from cuirass.marks.epochs import Epoch, EpochStore
from cuirass.prove import canaries as canary_probe
from cuirass.prove.channels import CHANNELS, Channel, TokenChannel, options_of
from cuirass.prove.cohorts import cohort_names, members
from cuirass.prove.correction import METHOD, holm, ks_uniform
from cuirass.prove.probes import ProbeSet, default_probes
from cuirass.prove.suspect import Answer, Endpoint, Suspect, describe_answers
from cuirass.prove.texts import KeyTest, channel_summary, implicated_text, score_keys
from cuirass.storage.stores import open_event_log

if TYPE_CHECKING:
    from cuirass.prove.weights import Weights, WeightsSuspect

QUESTION = (
    "Was this suspect model trained on (or does it copy) answers this gateway watermarked or seeded with "
    "canaries, and through which cohorts of accounts did those answers leave?"
)
CANARY_MAX_TOKENS = 48


@dataclasses.dataclass(slots=True)
class Context:
    """What every audit of one deployment shares: keys, cohorts, epochs, channels, the event log."""

    keyring: Any
    engine: sa.Engine | None
    cohorts: list[str]
    epochs: list[Epoch]
    channels: list[Channel]
    notes: list[str]


def context(
    settings: Any = None,
    keyring: Any = None,
    tokenizer: Any = None,
    engine: sa.Engine | None = None,
    channel_names: Sequence[str] = ("token", "text", "signature"),
) -> Context:
    """Keys, cohorts and epochs from the settings (data directory, policy); the token channel uses
    `tokenizer` (an object or a path), else the first local model of the configuration."""
    from cuirass.config import load_settings
    from cuirass.keyring import Keyring
    from cuirass.storage.migrate import make_engine

    settings = settings if settings is not None else load_settings(None)
    pol = settings.policy
    engine = engine if engine is not None else make_engine(settings.database_url)
    keyring = keyring if keyring is not None else Keyring.for_data_dir(settings.data_dir, pol.n_cohorts)
    if tokenizer is None:
        tokenizer = next((m.upstream.path for m in settings.models if m.upstream.type == "local"), None)
    notes, channels = [], []
    for name in channel_names:
        opts = options_of(name, pol.options)
        if name == "token":
            opts["tokenizer"] = tokenizer
        ch = CHANNELS[name](opts)
        if ch is None:
            notes.append(
                f"channel {name!r} not run: it needs transformers and our model's tokenizer "
                "(--tokenizer, or a local model in the configuration)"
            )
        else:
            channels.append(ch)
    if not channels:
        raise ValueError("no watermark channel available to score with")
    return Context(
        keyring, engine, cohort_names(pol.n_cohorts, pol.n_honeypot_cohorts), EpochStore(engine).all(), channels, notes
    )


@dataclasses.dataclass(frozen=True, slots=True)
class AuditOptions:
    """How the endpoints are questioned and the family of tests corrected."""

    queries: int = 64  # answers to collect (the probe prompts cycled when fewer)
    max_tokens: int = 256  # per answer
    temperature: float = 1.0  # of the probe answers (canary questions are asked at 0)
    concurrency: int = 4  # requests in flight
    seed: int | None = None  # question i asks for seed + i, so a server that honours seeds answers reproducibly
    alpha: float = 0.01  # family-wise error rate (Holm-Bonferroni over every key and canary test)
    canaries: bool = True  # probe for the canaries the ledger says were planted
    progress: bool = True  # progress bars on stderr

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha < 1.0:
            raise ValueError("alpha must be in (0, 1)")
        if self.queries < 1:
            raise ValueError("queries must be >= 1")


@dataclasses.dataclass(frozen=True, slots=True)
class Questions:
    """What every endpoint of one audit is asked."""

    probe_set: ProbeSet
    prompts: list[str]  # `queries` prompts (the probe set cycled when shorter)
    canaries: list[canary_probe.Probe]  # every planted canary the ledger records, and as many decoys
    notes: list[str]  # for the report: channels or canaries not run, and why


def questions(ctx: Context, opts: AuditOptions, probes: Sequence[str] | ProbeSet | None = None) -> Questions:
    """The prompts (the caller's, else the harvested prompts of the event log, else the reference problems)
    and the canary probes (when switched on and the ledger records plantings)."""
    if isinstance(probes, ProbeSet):
        probe_set = probes
    elif probes is not None:
        probe_set = ProbeSet(
            tuple(probes), "given", "given by the caller", f"{len(probes)} prompts given by the caller."
        )
    else:
        probe_set = default_probes(ctx.engine, opts.queries)
    planted = []
    notes = list(ctx.notes)
    if opts.canaries and ctx.engine is not None:
        planted = canary_probe.probe_set(CanaryLedger(ctx.engine).rows(), ctx.keyring, ctx.epochs)
    if not planted:
        notes.append(
            "canary probing not run: the canary ledger records no planted canary"
            if opts.canaries
            else "canary probing switched off"
        )
    return Questions(probe_set, probe_set.take(opts.queries), planted, notes)


@dataclasses.dataclass(slots=True)
class Side:
    """One endpoint's answers and its uncorrected tests."""

    endpoint: Endpoint | Weights
    answers: list[Answer]
    key_tests: list[KeyTest]
    canary: dict[str, Any] | None  # {"records", "tests", "pooled"} or None when no canary was planted
    windows: dict[str, int]
    channels: list[Channel]  # the context's, and any the suspect's access adds (its weights: likelihood)

    @property
    def texts(self) -> list[str]:
        return [a.text for a in self.answers if a.text]


def _asker(target: Endpoint | Weights, opts: AuditOptions) -> Suspect | WeightsSuspect:
    """What questions the target: the openai client for an API, the model in-process for weights."""
    if isinstance(target, Endpoint):
        return Suspect(target, concurrency=opts.concurrency, progress=opts.progress)
    from cuirass.prove.weights import WeightsSuspect

    return WeightsSuspect.load(target, progress=opts.progress)


def _question(endpoint: Endpoint | Weights, q: Questions, ctx: Context, opts: AuditOptions, label: str) -> Side:
    """One endpoint's side: ask the prompts and the canary questions, score the answers under every key
    (with the channels its access adds: the likelihood channel for weights)."""
    prompts, probes = q.prompts, q.canaries
    suspect = _asker(endpoint, opts)
    try:
        answers = suspect.ask(
            prompts, max_tokens=opts.max_tokens, temperature=opts.temperature, desc=f"{label} probes", seed=opts.seed
        )
        texts = [a.text for a in answers if a.text]
        if not texts:
            errors = sorted({a.error for a in answers if a.error})
            raise RuntimeError(
                f"{endpoint.base_url} ({endpoint.model}) answered none of {len(prompts)} probes: "
                + ("; ".join(errors[:3]) or "empty answers")
            )
        canary = None
        if probes:

            def ask(qs: list[str]) -> list[str | None]:
                return [
                    a.text
                    for a in suspect.ask(qs, max_tokens=CANARY_MAX_TOKENS, temperature=0.0, desc=f"{label} canaries")
                ]

            records = canary_probe.run(probes, ask)
            canary = {"records": records, **canary_probe.tests(records)}
        unique = sorted(set(prompts))
        asked = [a.prompt for a in answers if a.text]
        channels = [*ctx.channels, *suspect.channels()]
        key_tests = score_keys(texts, channels, ctx.cohorts, ctx.epochs, ctx.keyring, exclude=unique, prompts=asked)
    finally:
        suspect.close()
    windows: dict[str, int] = {}
    for ch in ctx.channels:
        if isinstance(ch, TokenChannel):  # how much of the output the prompt exclusion removed
            windows = {"all": len(ch.windows(texts)), "scored": len(ch.windows(texts, unique))}
    return Side(endpoint, answers, key_tests, canary, windows, channels)


def _correct(side: Side, alpha: float) -> tuple[list[KeyTest], list[dict[str, Any]]]:
    """Holm across the whole family: every key of every channel and every canary cohort test."""
    ctests = side.canary["tests"] if side.canary else []
    q = holm([t.p_value for t in side.key_tests] + [t["p_value"] for t in ctests])
    keys = [
        dataclasses.replace(t, p_corrected=qi, implicated=qi < alpha) for t, qi in zip(side.key_tests, q, strict=False)
    ]
    cans = [
        {**t, "p_corrected": qi, "implicated": qi < alpha}
        for t, qi in zip(ctests, q[len(side.key_tests) :], strict=True)
    ]
    return keys, cans


def _accounts(engine: sa.Engine | None, cohort: str, epoch: int, epochs: Sequence[Epoch]) -> list[dict[str, Any]]:
    if engine is None:
        return []
    e = next(x for x in epochs if x.epoch == epoch)
    return [m.to_dict() for m in members(open_event_log(engine), cohort, e.started, e.ended)]


def _summaries(keys: list[KeyTest], cans: list[dict[str, Any]], channels: list[Channel]) -> dict[str, Any]:
    out = {ch.name: channel_summary([t for t in keys if t.channel == ch.name]) for ch in channels}
    if cans:
        best = min(cans, key=lambda t: t["p_value"])
        out["canary"] = {
            "n_keys": len(cans),
            "n_scored": sum(t["n_planted"] for t in cans),
            "min_p": best["p_value"],
            "min_p_corrected": best["p_corrected"],
            "best": f"{best['cohort']}/epoch {best['epoch']}",
            "n_implicated": sum(t["implicated"] for t in cans),
        }
    return out


def _transcript(answers: Sequence[Answer]) -> list[dict[str, Any]]:
    return [dataclasses.asdict(a) for a in answers]


def audit_endpoint(
    suspect: Endpoint | Weights,
    ctx: Context,
    opts: AuditOptions = AuditOptions(),
    *,
    probes: Sequence[str] | ProbeSet | None = None,
    control: Endpoint | Weights | None = None,
    command: str = "",
) -> dict[str, Any]:
    """Question the suspect (and the control, if given) and return the report as plain data. Each is an
    API (`Endpoint`) or a model directory we hold (`prove.weights.Weights`: answered in-process, and its
    likelihoods tested too).

    `ctx` (from `context`) says which keys, cohorts, epochs and channels to test and where the event log
    and the canary ledger are. `probes`: prompts to ask (default: harvested prompts from the event log,
    else the reference problems). `command` is recorded as the way to re-run the audit.
    """
    q = questions(ctx, opts, probes)  # phase 1: what every endpoint is asked
    main = _question(suspect, q, ctx, opts, "suspect")  # phase 2: ask, score every key
    report = _report(suspect, control, q, main, ctx, opts, command)  # phase 3: one family, corrected; accounts
    if control is not None:  # phase 4: the control, through the same questions and tests
        side = _question(control, q, ctx, opts, "control")
        report["control"] = _control(side, opts.alpha)
        report["inputs"].append(
            describe_answers(side.answers, "control outputs", f"{control.base_url} (model {control.model})")
        )
        report["transcripts"]["control"] = _transcript(side.answers)
    report["conclusion"] = conclusion(report)
    return report


def _report(
    suspect: Endpoint | Weights,
    control: Endpoint | Weights | None,
    q: Questions,
    main: Side,
    ctx: Context,
    opts: AuditOptions,
    command: str,
) -> dict[str, Any]:
    """The report of the suspect's side: inputs, method, every test corrected (Holm over the whole family),
    the implicated cohorts and the accounts keyed to them."""
    keys, cans = _correct(main, opts.alpha)
    implicated = [
        {**t.to_dict(), "accounts": _accounts(ctx.engine, t.cohort, t.epoch, ctx.epochs)} for t in keys if t.implicated
    ]
    implicated += [
        {**t, "accounts": _accounts(ctx.engine, t["cohort"], t["epoch"], ctx.epochs)} for t in cans if t["implicated"]
    ]
    method_channels = {ch.name: ch.method for ch in main.channels}
    if main.canary:
        method_channels["canary"] = canary_probe.METHOD
    where = f"{suspect.base_url} (model {suspect.model})"
    return {
        "question": QUESTION,
        "subject": f"the model behind {where}",
        "cuirass_version": __version__,
        "generated_at": time.time(),
        "inputs": [q.probe_set.describe("probes"), describe_answers(main.answers, "suspect outputs", where)]
        + ([describe_answers(planted_answers(main), "suspect canary answers", where)] if main.canary else []),
        "endpoint": {
            "suspect": suspect.describe(),
            "control": control.describe() if control else None,
            "queries": len(q.prompts),
            "answered": len(main.texts),
            "failed": sum(a.text is None for a in main.answers),
            "errors": sorted({a.error for a in main.answers if a.error})[:5],
            "max_tokens": opts.max_tokens,
            "temperature": opts.temperature,
            "concurrency": opts.concurrency,
            "seed": opts.seed,
            "probe_source": q.probe_set.source,
            "probe_note": q.probe_set.note,
            "token_windows": main.windows,
            "notes": q.notes,
        },
        "method": {
            "channels": method_channels,
            "correction": METHOD,
            "correction_note": (
                "Holm-Bonferroni across every (channel, cohort, epoch) key tested and every canary "
                "cohort test; controls the family-wise error rate at alpha under arbitrary "
                "dependence (union bound)."
            ),
            "alpha": opts.alpha,
            "n_tests": len(keys) + len(cans),
            "cohorts": list(ctx.cohorts),
            "purposes": {ch.name: ch.purpose for ch in main.channels},
        },
        "epochs": [e.to_dict() for e in ctx.epochs],
        "channels": _summaries(keys, cans, main.channels),
        "tests": [t.to_dict() for t in keys],
        "canary": {"tests": cans, "pooled": main.canary["pooled"], "records": main.canary["records"]}
        if main.canary
        else None,
        "implicated": implicated,
        "transcripts": {"suspect": _transcript(main.answers)},
        "rerun": command,
    }


def planted_answers(side: Side) -> list[Answer]:
    """The canary probes and what the endpoint said, as answers (for hashing)."""
    recs = side.canary["records"] if side.canary else []
    return [Answer(r["probe"], r["answer"]) for r in recs]


def _control(side: Side, alpha: float) -> dict[str, Any]:
    keys, cans = _correct(side, alpha)
    ks = ks_uniform([t.p_randomized for t in keys])
    every = [t.p_value for t in keys] + [t["p_value"] for t in cans]
    implicated = [t.to_dict() for t in keys if t.implicated] + [t for t in cans if t["implicated"]]
    return {
        "endpoint": side.endpoint.describe(),
        "answered": len(side.texts),
        "tests": [t.to_dict() for t in keys],
        "canary": {"tests": cans, "pooled": side.canary["pooled"], "records": side.canary["records"]}
        if side.canary
        else None,
        "implicated": implicated,
        "min_p": min(every),
        "min_p_corrected": min(holm(every)),
        "ks_uniform": ks.to_dict(),
        "token_windows": side.windows,
        "passed": ks.uniform and not implicated,
    }


def conclusion(report: dict[str, Any]) -> str:
    """One paragraph in plain words."""
    alpha, m = report["method"]["alpha"], report["method"]["n_tests"]
    ep = report["endpoint"]
    text = (
        f"{ep['answered']} answers from {ep['suspect']['model']} at {ep['suspect']['base_url']} to "
        f"{ep['queries']} probes ({ep['probe_source']}). "
    )
    if report["implicated"]:
        text += (
            f"The suspect's answers carry our marks. Implicated at family-wise level {alpha} over {m} tests: "
            + implicated_text(report["implicated"])
            + "."
        )
    else:
        text += (
            f"No test reaches a Holm-corrected p-value below {alpha} over {m} tests: these answers give no "
            "evidence that the suspect learnt from our outputs (not proof of absence: more probes, or "
            "probes closer to what was harvested, add power)."
        )
    ctl = report.get("control")
    if ctl is not None:
        ks = ctl["ks_uniform"]
        text += (
            f" Control ({ctl['endpoint']['model']}): {len(ctl['implicated'])} tests implicated, smallest "
            f"p = {ctl['min_p']:.3g} (Holm {ctl['min_p_corrected']:.3g}); its randomized p-values "
            f"{'look' if ks['uniform'] else 'do NOT look'} uniform (KS D = {ks['statistic']:.3f}, "
            f"p = {ks['p_value']:.3g}, n = {ks['n']}), so the self-check "
            f"{'passed' if ctl['passed'] else 'FAILED: do not rely on this audit'}."
        )
    return text
