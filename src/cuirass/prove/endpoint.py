"""`audit endpoint`: question a suspect model over its API and test its answers for our marks.

    probes   = harvested prompts from our event log (or a file, or the reference problems)   probes.py
    outputs  = the suspect's answers (openai client, concurrent, retried)                     suspect.py
    token    : radioactivity test (Sander et al. 2024, "Watermarking Makes Language Models Radioactive",
               arXiv:2402.14904): re-tokenise the outputs with our tokenizer, drop steps whose (context,
               token) occurs in the probe prompts, keep the steps our model is unsure about (the same
               entropy gate as generation), score each distinct context once over all outputs, count
               green windows per key: X ~ Binomial(n, gamma) under H0, exact p       (channels.py)
    text     : the lexical watermark on the same outputs (the same dedup and prompt exclusion)
    canary   : planted vs never-planted canary recall, Fisher's exact test per cohort     canaries.py
    family   = every (channel, cohort, epoch) key and every canary cohort test; Holm-Bonferroni
    implicated (cohort, epoch) -> the accounts keyed to that cohort while the epoch was in force

A control endpoint (a model that never saw our outputs) goes through exactly the same questions and
tests: nothing may be implicated and its randomized p-values must look Uniform(0, 1) (KS test).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from cuirass import __version__
from cuirass.prove import canaries as canary_probe
from cuirass.prove.channels import CHANNELS, Channel
from cuirass.prove.cohorts import cohort_names, members
from cuirass.prove.correction import METHOD, holm, ks_uniform
from cuirass.prove.epochs import Epoch, EpochStore
from cuirass.prove.probes import ProbeSet, default_probes
from cuirass.prove.suspect import Answer, Endpoint, Suspect, describe_answers
from cuirass.prove.texts import KeyTest, channel_summary, implicated_text, score_keys

QUESTION = ("Was this suspect model trained on (or does it copy) answers this gateway watermarked or seeded with "
            "canaries, and through which cohorts of accounts did those answers leave?")
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


def context(settings: Any = None, keyring: Any = None, tokenizer: Any = None, engine: sa.Engine | None = None,
            channel_names: Sequence[str] = ("token", "text")) -> Context:
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
        opts = dict(pol.options.get("logit_watermark" if name == "token" else "watermark", {}))
        if name == "token":
            opts["tokenizer"] = tokenizer
        ch = CHANNELS[name](opts)
        if ch is None:
            notes.append(f"channel {name!r} not run: it needs transformers and our model's tokenizer "
                         "(--tokenizer, or a local model in the configuration)")
        else:
            channels.append(ch)
    if not channels:
        raise ValueError("no watermark channel available to score with")
    return Context(keyring, engine, cohort_names(pol.n_cohorts, pol.n_honeypot_cohorts), EpochStore(engine).all(),
                   channels, notes)


@dataclasses.dataclass(slots=True)
class Side:
    """One endpoint's answers and its uncorrected tests."""

    endpoint: Endpoint
    answers: list[Answer]
    key_tests: list[KeyTest]
    canary: dict[str, Any] | None  # {"records", "tests", "pooled"} or None when no canary was planted
    windows: dict[str, int]

    @property
    def texts(self) -> list[str]:
        return [a.text for a in self.answers if a.text]


def _question(endpoint: Endpoint, prompts: list[str], probes: list[canary_probe.Probe], ctx: Context, *,
              max_tokens: int, temperature: float, concurrency: int, progress: bool, seed: int | None,
              label: str) -> Side:
    suspect = Suspect(endpoint, concurrency=concurrency, progress=progress)
    try:
        answers = suspect.ask(prompts, max_tokens=max_tokens, temperature=temperature, desc=f"{label} probes",
                              seed=seed)
        texts = [a.text for a in answers if a.text]
        if not texts:
            errors = sorted({a.error for a in answers if a.error})
            raise RuntimeError(f"{endpoint.base_url} ({endpoint.model}) answered none of {len(prompts)} probes: "
                               + ("; ".join(errors[:3]) or "empty answers"))
        canary = None
        if probes:
            def ask(qs: list[str]) -> list[str | None]:
                return [a.text for a in suspect.ask(qs, max_tokens=CANARY_MAX_TOKENS, temperature=0.0,
                                                    desc=f"{label} canaries")]

            records = canary_probe.run(probes, ask)
            canary = {"records": records, **canary_probe.tests(records)}
    finally:
        suspect.close()
    unique = sorted(set(prompts))
    key_tests = score_keys(texts, ctx.channels, ctx.cohorts, ctx.epochs, ctx.keyring, exclude=unique)
    windows: dict[str, int] = {}
    for ch in ctx.channels:
        if hasattr(ch, "windows"):  # the token channel: how much of the output the prompt exclusion removed
            windows = {"all": len(ch.windows(texts)), "scored": len(ch.windows(texts, unique))}
    return Side(endpoint, answers, key_tests, canary, windows)


def _correct(side: Side, alpha: float) -> tuple[list[KeyTest], list[dict[str, Any]]]:
    """Holm across the whole family: every key of every channel and every canary cohort test."""
    ctests = side.canary["tests"] if side.canary else []
    q = holm([t.p_value for t in side.key_tests] + [t["p_value"] for t in ctests])
    keys = [dataclasses.replace(t, p_corrected=qi, implicated=qi < alpha)
            for t, qi in zip(side.key_tests, q, strict=False)]
    cans = [{**t, "p_corrected": qi, "implicated": qi < alpha}
            for t, qi in zip(ctests, q[len(side.key_tests):], strict=True)]
    return keys, cans


def _accounts(engine: sa.Engine | None, cohort: str, epoch: int, epochs: Sequence[Epoch]) -> list[dict[str, Any]]:
    if engine is None:
        return []
    e = next(x for x in epochs if x.epoch == epoch)
    return [m.to_dict() for m in members(engine, cohort, e.started, e.ended)]


def _summaries(keys: list[KeyTest], cans: list[dict[str, Any]], ctx: Context) -> dict[str, Any]:
    out = {ch.name: channel_summary([t for t in keys if t.channel == ch.name]) for ch in ctx.channels}
    if cans:
        best = min(cans, key=lambda t: t["p_value"])
        out["canary"] = {"n_keys": len(cans), "n_scored": sum(t["n_planted"] for t in cans), "min_p": best["p_value"],
                         "min_p_corrected": best["p_corrected"], "best": f"{best['cohort']}/epoch {best['epoch']}",
                         "n_implicated": sum(t["implicated"] for t in cans)}
    return out


def _transcript(answers: Sequence[Answer]) -> list[dict[str, Any]]:
    return [dataclasses.asdict(a) for a in answers]


def audit_endpoint(base_url: str, model: str, *, api_key: str | None = None,
                   probes: Sequence[str] | ProbeSet | None = None, queries: int = 64,
                   control: Endpoint | Mapping[str, Any] | None = None, settings: Any = None, keyring: Any = None,
                   tokenizer: Any = None, max_tokens: int = 256, temperature: float = 1.0, concurrency: int = 4,
                   progress: bool = True, alpha: float = 0.01, canaries: bool = True, seed: int | None = None,
                   ctx: Context | None = None, command: str = "") -> dict[str, Any]:
    """Question the suspect at `base_url` (and the control, if given) and return the report as plain data.

    `probes`: prompts to ask (default: harvested prompts from the event log, else the reference problems);
    `queries` answers are collected (prompts cycled when fewer). `settings` (cuirass.config.Settings) says
    where the keys, the event log and the canary ledger are; `keyring` and `tokenizer` override it.
    `seed`: question i asks for seed + i, so a server that honours seeds answers reproducibly.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError("alpha must be in (0, 1)")
    if queries < 1:
        raise ValueError("queries must be >= 1")
    ctx = ctx or context(settings, keyring, tokenizer)
    if isinstance(probes, ProbeSet):
        probe_set = probes
    elif probes is not None:
        probe_set = ProbeSet(tuple(probes), "given", "given by the caller",
                             f"{len(probes)} prompts given by the caller.")
    else:
        probe_set = default_probes(ctx.engine, queries)
    prompts = probe_set.take(queries)
    planted = []
    notes = list(ctx.notes)
    if canaries and ctx.engine is not None:
        from cuirass.respond.canary_ledger import CanaryLedger

        planted = canary_probe.probe_set(CanaryLedger(ctx.engine).rows(), ctx.keyring, ctx.epochs)
    if not planted:
        notes.append("canary probing not run: the canary ledger records no planted canary" if canaries
                     else "canary probing switched off")
    suspect = Endpoint(base_url, model, api_key)
    ctl = control if isinstance(control, Endpoint) or control is None else Endpoint(**dict(control))
    ask = {"max_tokens": max_tokens, "temperature": temperature, "concurrency": concurrency, "progress": progress,
           "seed": seed}
    main = _question(suspect, prompts, planted, ctx, label="suspect", **ask)
    keys, cans = _correct(main, alpha)
    implicated = [{**t.to_dict(), "accounts": _accounts(ctx.engine, t.cohort, t.epoch, ctx.epochs)}
                  for t in keys if t.implicated]
    implicated += [{**t, "accounts": _accounts(ctx.engine, t["cohort"], t["epoch"], ctx.epochs)}
                   for t in cans if t["implicated"]]
    method_channels = {ch.name: ch.method for ch in ctx.channels}
    if planted:
        method_channels["canary"] = canary_probe.METHOD
    where = f"{base_url} (model {model})"
    report: dict[str, Any] = {
        "question": QUESTION,
        "subject": f"the model behind {where}",
        "cuirass_version": __version__,
        "generated_at": time.time(),
        "inputs": [probe_set.describe("probes"), describe_answers(main.answers, "suspect outputs", where)]
        + ([describe_answers(planted_answers(main), "suspect canary answers", where)] if main.canary else []),
        "endpoint": {"suspect": suspect.describe(), "control": ctl.describe() if ctl else None,
                     "queries": len(prompts), "answered": len(main.texts),
                     "failed": sum(a.text is None for a in main.answers),
                     "errors": sorted({a.error for a in main.answers if a.error})[:5],
                     "max_tokens": max_tokens, "temperature": temperature, "concurrency": concurrency, "seed": seed,
                     "probe_source": probe_set.source, "probe_note": probe_set.note,
                     "token_windows": main.windows, "notes": notes},
        "method": {
            "channels": method_channels,
            "correction": METHOD,
            "correction_note": ("Holm-Bonferroni across every (channel, cohort, epoch) key tested and every canary "
                                "cohort test; controls the family-wise error rate at alpha under arbitrary "
                                "dependence (union bound)."),
            "alpha": alpha,
            "n_tests": len(keys) + len(cans),
            "cohorts": list(ctx.cohorts),
            "purposes": {ch.name: ch.purpose for ch in ctx.channels},
        },
        "epochs": [e.to_dict() for e in ctx.epochs],
        "channels": _summaries(keys, cans, ctx),
        "tests": [t.to_dict() for t in keys],
        "canary": {"tests": cans, "pooled": main.canary["pooled"], "records": main.canary["records"]}
        if main.canary else None,
        "implicated": implicated,
        "transcripts": {"suspect": _transcript(main.answers)},
        "rerun": command,
    }
    if ctl is not None:
        side = _question(ctl, prompts, planted, ctx, label="control", **ask)
        report["control"] = _control(side, alpha)
        report["inputs"].append(describe_answers(side.answers, "control outputs",
                                                 f"{ctl.base_url} (model {ctl.model})"))
        report["transcripts"]["control"] = _transcript(side.answers)
    report["conclusion"] = conclusion(report)
    return report


def planted_answers(side: Side) -> list[Answer]:
    """The canary probes and what the endpoint said, as answers (for hashing)."""
    recs = side.canary["records"] if side.canary else []
    return [Answer(r["probe"], r["answer"]) for r in recs]


def _control(side: Side, alpha: float) -> dict[str, Any]:
    keys, cans = _correct(side, alpha)
    ks = ks_uniform([t.p_randomized for t in keys])
    every = [t.p_value for t in keys] + [t["p_value"] for t in cans]
    implicated = [t.to_dict() for t in keys if t.implicated] + [t for t in cans if t["implicated"]]
    return {"endpoint": side.endpoint.describe(), "answered": len(side.texts), "tests": [t.to_dict() for t in keys],
            "canary": {"tests": cans, "pooled": side.canary["pooled"], "records": side.canary["records"]}
            if side.canary else None,
            "implicated": implicated, "min_p": min(every), "min_p_corrected": min(holm(every)),
            "ks_uniform": ks.to_dict(), "token_windows": side.windows,
            "passed": ks.uniform and not implicated}


def conclusion(report: dict[str, Any]) -> str:
    """One paragraph in plain words."""
    alpha, m = report["method"]["alpha"], report["method"]["n_tests"]
    ep = report["endpoint"]
    text = (f"{ep['answered']} answers from {ep['suspect']['model']} at {ep['suspect']['base_url']} to "
            f"{ep['queries']} probes ({ep['probe_source']}). ")
    if report["implicated"]:
        text += (f"The suspect's answers carry our marks. Implicated at family-wise level {alpha} over {m} tests: "
                 + implicated_text(report["implicated"]) + ".")
    else:
        text += (f"No test reaches a Holm-corrected p-value below {alpha} over {m} tests: these answers give no "
                 "evidence that the suspect learnt from our outputs (not proof of absence: more probes, or "
                 "probes closer to what was harvested, add power).")
    ctl = report.get("control")
    if ctl is not None:
        ks = ctl["ks_uniform"]
        text += (f" Control ({ctl['endpoint']['model']}): {len(ctl['implicated'])} tests implicated, smallest "
                 f"p = {ctl['min_p']:.3g} (Holm {ctl['min_p_corrected']:.3g}); its randomized p-values "
                 f"{'look' if ks['uniform'] else 'do NOT look'} uniform (KS D = {ks['statistic']:.3f}, "
                 f"p = {ks['p_value']:.3g}, n = {ks['n']}), so the self-check "
                 f"{'passed' if ctl['passed'] else 'FAILED: do not rely on this audit'}.")
    return text
