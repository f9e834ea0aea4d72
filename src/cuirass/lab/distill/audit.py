"""The audit step: does a student carry our marks? `audit_students` is the lab's one entry point to it.

Every trained student (and the control) is served by one `cuirass serve` whose models are local
upstreams pointing at the students' directories (policy and detection off: it is the suspect's server,
not ours), and each is questioned with `cuirass.prove.endpoint.audit_endpoint`, exactly as an operator
would audit a suspect's API: probe prompts like the harvested ones (Sander et al. 2024, arXiv:2402.14904,
sec. 5), the token-level radioactivity test (Kirchenbauer et al. 2023 green lists, each window once,
probe windows excluded), the lexical watermark and, where canaries were planted, canary recall; Holm over
the whole family. The keys and the canary ledger are those of the gateway that served the condition.

    audit p = the smallest Holm-corrected p-value of the family      (family-wise: any dependence)

The control is a student of the same size trained on the same problems' reference solutions, which never
went through the gateway: its p-value must stay large.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cuirass.lab.distill.gateway import AccountSpec, Gateway

ALPHA = 0.01
CONTROL = "control"
LEVEL = 1e-6  # the bar: p < 1e-6 (Holm)
BLACK_BOX_CURVE = (25, 50, 100, 200, 400, 1000, 2000)  # probes: the first n answers of the HTTP audit
WEIGHTS_CURVE = (10, 25, 50, 100, 200)  # probes: the first n answers of the weights audit
CLEAN_KEYRINGS = 20  # master secrets that never marked anything: their keys must give uniform p-values


@dataclasses.dataclass(frozen=True, slots=True)
class Suspect:
    """A trained student and the deployment whose keys and ledger the audit uses."""

    model_dir: Path
    gateway_config: Path  # the condition's gateway: its policy (options, cohorts) ...
    data_dir: Path  # ... its event log, canary ledger and epochs
    canaries: bool  # ask the canary probes (only where the condition's gateway planted canaries)


def _serving_config(models: Mapping[str, Path], threads: int, device: str, concurrency: int) -> dict[str, Any]:
    local = {"type": "local", "device": device, "threads": threads, "max_concurrency": concurrency}
    return {
        "models": [{"name": name, "upstream": {**local, "path": str(path)}} for name, path in models.items()],
        "policy": {"bands": [], "default_actions": []},
        "detection": {"enabled": False},
        "auth": {"cache_ttl_s": 60.0},
    }


def summarize(report: Mapping[str, Any]) -> dict[str, Any]:
    """The audit report in a few numbers: the family-wise p, the best channel, and each channel's best key."""
    channels = report["channels"]
    best = min(channels, key=lambda c: channels[c]["min_p_corrected"]) if channels else None
    return {
        "p": channels[best]["min_p_corrected"] if best else 1.0,
        "channel": best,
        "flagged": bool(report["implicated"]),
        "n_tests": report["method"]["n_tests"],
        "queries": report["endpoint"]["queries"],
        "answered": report["endpoint"]["answered"],
        "channels": {
            c: {"p": s["min_p"], "p_corrected": s["min_p_corrected"], "best": s["best"], "n_scored": s["n_scored"]}
            for c, s in channels.items()
        },
        "keys": {f"{t['channel']}/{t['cohort']}": [t["p_value"], t["z"]] for t in report["tests"] if t["epoch"] == 0},
        "conclusion": report["conclusion"],
    }


def at_cohorts(summary: Mapping[str, Any], channel: str, cohorts: list[str]) -> dict[str, Any] | None:
    """The test restricted to the cohorts the campaign's answers were keyed to (known to the lab, not to an
    auditor): p = min over those keys × their number (Bonferroni), and the best key's z."""
    rows = [summary.get("keys", {}).get(f"{channel}/{c}") for c in cohorts]
    rows = [r for r in rows if r is not None]
    if not rows:
        return None
    p, z = min(rows)
    return {"p": min(1.0, p * len(rows)), "z": z, "cohorts": cohorts}


def mark_in_harvest(
    texts_by_cohort: Mapping[str, list[str]], keyring: Any, teacher: str, purpose: str = "logit_watermark"
) -> dict[str, Any] | None:
    """Does the harvest itself carry the token watermark of the cohorts it was served to?

    Each cohort's texts are scored with that cohort's key (TokenChannel, entropy gate of our model); under H0
    every cohort's green count is Binomial(n_c, gamma), so the pooled count is Binomial(sum n_c, gamma):
    p = P(X >= sum x_c), exact. The same function on condition A's data is the null check."""
    from scipy.stats import binom

    from cuirass.prove.channels import CHANNELS

    groups = {c: t for c, t in texts_by_cohort.items() if t}
    if not groups:
        return None
    channel = CHANNELS["token"]({"tokenizer": teacher})
    if channel is None:
        raise RuntimeError("the token channel is not available: it needs cuirass.marks.logit and transformers")
    n = x = 0
    gamma = 0.0
    for cohort, texts in groups.items():
        s = channel.score(texts, [keyring.key(purpose, cohort, 0)])[0]
        n, x, gamma = n + s.n_scored, x + s.n_green, s.gamma
    z = (x - gamma * n) / (n * gamma * (1 - gamma)) ** 0.5 if n else 0.0
    return {
        "p": float(binom.sf(x - 1, n, gamma)) if n else 1.0,
        "z": z,
        "n_scored": n,
        "n_green": x,
        "cohorts": sorted(groups),
    }


def signature_in_harvest(pairs_by_cohort: Mapping[str, list[tuple[str, str]]], keyring: Any) -> dict[str, Any] | None:
    """Does the harvest carry the answer signature of the cohorts it was served to? Each cohort's (prompt,
    answer) pairs are scored with that cohort's key; the pooled count's null is the convolution of the
    cohorts' exact nulls (`marks.signature`), so p = P(T >= t) stays exact."""
    import numpy as np

    from cuirass.marks import signature

    groups = {c: pairs for c, pairs in pairs_by_cohort.items() if pairs}
    if not groups:
        return None
    dist, hits, read = np.ones(1), 0, 0
    for cohort, pairs in groups.items():
        by_window = signature.counts(pairs)
        null = signature.null_distribution(by_window.values())
        s = signature.score(by_window, keyring.key("signature", cohort, 0), dist=null)
        dist = np.convolve(dist, null)
        hits, read = hits + s.hits, read + s.n_answers
    return {
        "p": signature.tail(dist, hits),
        "hits": hits,
        "n_read": read,
        "expected": read / signature.K,
        "cohorts": sorted(groups),
    }


def failed(why: str) -> dict[str, Any]:
    """The summary of an audit that could not run (the report shows it as not done)."""
    return {"p": None, "channel": None, "flagged": None, "error": why, "channels": {}}


def audit_students(
    suspects: Mapping[str, Suspect],
    probes: list[str],
    keyring: Any,
    teacher: str,
    where: Path,
    *,
    queries: int,
    max_tokens: int,
    seed: int,
    threads: int = 1,
    concurrency: int = 2,
    device: str = "auto",
    progress: bool = False,
) -> dict[str, dict[str, Any]]:
    """Serve every suspect, audit each over HTTP; returns {name: summary} (full reports in `where`).

    `teacher` is our model's directory: the token channel re-tokenises with its tokenizer and, like the
    generation side, scores only the steps where it is unsure (its entropy gate loads the model)."""
    import json

    from cuirass.config import load_settings
    from cuirass.lab.detect_eval import finite
    from cuirass.prove.endpoint import AuditOptions, audit_endpoint, context
    from cuirass.prove.suspect import Endpoint

    where.mkdir(parents=True, exist_ok=True)
    models = {name: s.model_dir for name, s in suspects.items()}
    out: dict[str, dict[str, Any]] = {}
    auditor = [AccountSpec("auditor", "audit", "audit")]
    with Gateway(where / "suspects", _serving_config(models, threads, device, concurrency), auditor) as gw:
        for name, s in suspects.items():
            settings = load_settings(s.gateway_config, data_dir=s.data_dir)
            opts = AuditOptions(
                queries=queries,
                max_tokens=max_tokens,
                temperature=1.0,
                concurrency=concurrency,
                seed=seed,
                alpha=ALPHA,
                canaries=s.canaries,
                progress=progress,
            )
            report = audit_endpoint(
                Endpoint(gw.base_url, name, gw.keys["auditor"]),
                context(settings, keyring, teacher),
                opts,
                probes=probes,
                command="cuirass lab distill",
            )
            (where / f"audit-{name}.json").write_text(json.dumps(finite(report), indent=1, default=str))
            out[name] = summarize(report)
    return out


def curve(
    answers: list[Any], ctx: Any, counts: tuple[int, ...], extra: list[Any] | None = None
) -> list[dict[str, Any]]:
    """How many probes the audit needed: for each n, the smallest Holm-corrected p of every channel's keys
    (`ctx.channels`, plus `extra`) on the first n answers, as if the audit had stopped there (canary tests
    are left out of this family); the last point is every answer."""
    from cuirass.prove.correction import holm
    from cuirass.prove.texts import score_keys

    channels = [*ctx.channels, *(extra or [])]
    out = []
    for n in sorted({c for c in counts if c < len(answers)} | {len(answers)}):
        got = [a for a in answers[:n] if a.text]
        tests = score_keys(
            [a.text for a in got],
            channels,
            ctx.cohorts,
            ctx.epochs,
            ctx.keyring,
            exclude=sorted({a.prompt for a in answers[:n]}),
            prompts=[a.prompt for a in got],
        )
        q = holm([t.p_value for t in tests])
        best = min(range(len(tests)), key=q.__getitem__)
        out.append({"n": n, "p": q[best], "channel": tests[best].channel, "cohort": tests[best].cohort})
    return out


def probes_needed(points: list[dict[str, Any]], level: float = LEVEL) -> int | None:
    """The first n of a curve whose p is below `level` (None: not within the curve)."""
    return next((pt["n"] for pt in points if pt["p"] < level), None)


def clean_keys(answers: list[Any], ctx: Any, extra: list[Any] | None = None) -> dict[str, Any]:
    """The false-accusation check: one key from each of CLEAN_KEYRINGS master secrets that never marked
    anything, on the signature channels (sampled lead-ins, and likelihood where weights were read). Their
    randomized p-values must look uniform (KS) and none may fall below 1e-3."""
    from cuirass.keyring import Keyring
    from cuirass.prove.correction import ks_uniform
    from cuirass.prove.texts import score_keys

    channels = [c for c in [*ctx.channels, *(extra or [])] if c.purpose == "signature"]
    got = [a for a in answers if a.text]
    texts, prompts = [a.text for a in got], [a.prompt for a in got]
    tests = []
    for i in range(CLEAN_KEYRINGS):
        ring = Keyring(f"cuirass-lab-clean-keyring-{i}".encode())
        tests += score_keys(texts, channels, ctx.cohorts[-1:], ctx.epochs[:1], ring, prompts=prompts)
    ks = ks_uniform([t.p_randomized for t in tests])
    return {"n_keys": len(tests), "min_p": min(t.p_value for t in tests), "ks": ks.to_dict()}


def black_box_mode(ctx: Any, http_report: Mapping[str, Any]) -> dict[str, Any]:
    """Black box: the HTTP audit's answers as a curve over the number of probes, and the clean-key check."""
    from cuirass.prove.suspect import Answer

    answers = [Answer(**a) for a in http_report["transcripts"]["suspect"]]
    points = curve(answers, ctx, BLACK_BOX_CURVE)
    return {"curve": points, "needed": probes_needed(points), "clean": clean_keys(answers, ctx)}


def weights_mode(
    s: Suspect,
    ctx: Any,
    probes: list[str],
    *,
    queries: int,
    max_tokens: int,
    seed: int,
    threads: int = 1,
    device: str = "cpu",
    where: Path | None = None,
) -> dict[str, Any]:
    """Open weights: `audit_endpoint` on the model directory (answered in-process, with the likelihood
    channel), its curve over the number of probes, and the clean-key check."""
    import json

    from cuirass.lab.detect_eval import finite
    from cuirass.prove.endpoint import AuditOptions, audit_endpoint
    from cuirass.prove.suspect import Answer
    from cuirass.prove.weights import Weights, WeightsSuspect

    target = Weights(s.model_dir, device="cpu" if device == "auto" else device, threads=threads)
    opts = AuditOptions(queries=queries, max_tokens=max_tokens, seed=seed, alpha=ALPHA, canaries=False, progress=False)
    report = audit_endpoint(target, ctx, opts, probes=probes, command="cuirass lab distill (weights)")
    if where is not None:
        where.mkdir(parents=True, exist_ok=True)
        (where / f"audit-weights-{s.model_dir.name}.json").write_text(json.dumps(finite(report), indent=1, default=str))
    answers = [Answer(**a) for a in report["transcripts"]["suspect"]]
    model = WeightsSuspect.load(target, progress=False)
    try:
        points = curve(answers, ctx, WEIGHTS_CURVE, model.channels())
        clean = clean_keys(answers, ctx, model.channels())
    finally:
        model.close()
    return {**summarize(report), "curve": points, "needed": probes_needed(points), "clean": clean}


def access_modes(
    s: Suspect,
    probes: list[str],
    keyring: Any,
    teacher: str,
    http_report: Mapping[str, Any] | None,
    *,
    queries: int,
    max_tokens: int,
    seed: int,
    threads: int = 1,
    device: str = "cpu",
    where: Path | None = None,
) -> dict[str, Any]:
    """One student under every kind of access an auditor may have: black box (`black_box_mode`, from the
    HTTP audit's answers) and open weights (`weights_mode`)."""
    from cuirass.config import load_settings
    from cuirass.prove.endpoint import context

    ctx = context(load_settings(s.gateway_config, data_dir=s.data_dir), keyring, teacher)
    out: dict[str, Any] = {}
    if http_report is not None:
        out["black_box"] = black_box_mode(ctx, http_report)
    out["weights"] = weights_mode(
        s, ctx, probes, queries=queries, max_tokens=max_tokens, seed=seed, threads=threads, device=device, where=where
    )
    return out
