"""`cuirass lab distill`: harvest through real gateways, train students, evaluate, audit, report.

    workloads (workload.py) -> gateways (gateway.py; plain: A and every C, defended: B, stealth: E)
    -> harvests over HTTP (harvest.py) + what the gateway did (exposure.py)
    -> a student per condition, an untrained student, a control student (student.py)
    -> accuracy, held-out loss, audit p-values (audit.py) -> results.json, summary.md, PNGs (report.py)
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from cuirass.lab.distill import conditions as cond
from cuirass.lab.distill import harvest, student, workload
from cuirass.lab.distill.config import DistillConfig
from cuirass.lab.distill.exposure import exposure
from cuirass.lab.distill.gateway import Gateway, gateway_config
from cuirass.lab.distill.stats import value_ratio, wilson


def _say(progress: bool) -> Any:
    t0 = time.perf_counter()
    return ((lambda msg: print(f"[{time.perf_counter() - t0:6.0f} s] {msg}", file=sys.stderr, flush=True))
            if progress else (lambda msg: None))


def _snapshot(path: str, where: Path) -> str:
    """Copy a model directory into the run's folder: every gateway of the run serves the same weights even
    if the source changes meanwhile (e.g. the built-in model being retrained)."""
    from cuirass.engine.loader import resolve_path

    if not where.exists():
        shutil.copytree(resolve_path(path), where)
    return str(where.resolve())


def master_secret(seed: int) -> str:
    """The lab's master secret (every gateway of a run shares it, so the audit knows every key)."""
    return f"cuirass-lab-distill-master-secret-{seed:08d}"


def _harvest_gateway(kind: str, config: DistillConfig, conds: list[cond.Condition], out: Path,
                     benign: list[workload.Request], progress: bool) -> dict[str, Any]:
    """Start one gateway, send the benign users and the campaign of each of its conditions, stop it.

    Returns {"benign": [Exchange], "harvests": {condition: [Exchange]}, "exposure": {...}, "seconds": {...}}."""
    say = _say(progress)
    mine = [c for c in conds if c.gateway == kind and c.harvest_of is None]
    campaigns = {c.name: workload.campaign(config, c.stealth, c.slug.lower()) for c in mine}
    orgs = {c.name: c.org for c in mine}
    specs = workload.accounts(benign, {"benign": "benign", "campaign": "benign"})
    for c in mine:
        specs += workload.accounts(campaigns[c.name], {"benign": orgs[c.name], "campaign": orgs[c.name]})
    policy = cond.policy_for(kind, conds)
    gw_cfg = gateway_config(config.teacher, config.decoy, policy, detection=kind != "plain", threads=config.threads,
                            concurrency=config.concurrency, device=config.device)
    say(f"[{kind}] starting gateway ({', '.join(c.name for c in mine)}; {len(specs)} accounts) ...")
    result: dict[str, Any] = {"harvests": {}, "exposure": {}, "seconds": {}}
    secret = {"CUIRASS_MASTER_SECRET": master_secret(config.seed)}
    with Gateway(out / f"gateway-{kind}", gw_cfg, specs, env=secret) as gw:
        result["config_path"], result["data_dir"] = gw.config_path, gw.data_dir
        send = dict(max_tokens=config.max_tokens, concurrency=config.concurrency, progress=progress)
        warm = harvest.send([benign[0]], gw.base_url, gw.keys, **send, desc=f"{kind}: warm-up")  # loads the model
        if warm[0].reply is None:
            raise RuntimeError(f"the {kind} gateway does not answer: {warm[0].error}")
        first = True
        for c in mine:
            t0 = time.perf_counter()
            reqs = workload.interleave(benign, campaigns[c.name], config.seed) if first else campaigns[c.name]
            got = harvest.send(reqs, gw.base_url, gw.keys, **send, desc=f"{kind}: {c.name}")
            result["seconds"][c.name] = time.perf_counter() - t0
            if first:
                result["benign"] = [x for x in got if x.request.role == "benign"]
                first = False
            result["harvests"][c.name] = [x for x in got if x.request.role != "benign"]
        time.sleep(0.5)  # the event writer flushes every 50 ms
        for c in mine:
            reqs = campaigns[c.name]
            result["exposure"][c.name] = exposure(
                gw.db_path, {r.account for r in reqs}, {r.prompt for r in reqs if r.harvest},
                {r.account for r in benign})
    return result


def _benign_summary(exchanges: list[harvest.Exchange], reference: list[harvest.Exchange]) -> dict[str, Any]:
    right = sum(x.reply is not None and student.ev.final_answer_correct(x.reply, x.request.problem.answer)
                for x in exchanges)
    same = sum(a.reply == b.reply for a, b in zip(exchanges, reference, strict=True))
    n = len(exchanges)
    return {"n": n, "accuracy": right / n if n else None, "ci95": list(wilson(right, n)),
            "identical_to_A": same / n if n else None, "errors": sum(x.reply is None for x in exchanges)}


def _data_summary(name: str, got: list[harvest.Exchange], base: list[harvest.Exchange],
                  used: list[student.Example]) -> dict[str, Any]:
    """How the harvested data compares with what the bare teacher said for the same requests (A)."""
    rows = [x for x in got if x.request.harvest]
    base_by = {(x.request.problem.question, x.request.seed): x.reply for x in base if x.request.harvest}
    same = [x.reply == base_by.get((x.request.problem.question, x.request.seed)) for x in rows]
    right = sum(x.reply is not None and student.ev.final_answer_correct(x.reply, x.request.problem.answer)
                for x in rows)
    return {"harvested": len(rows), "refused": sum(x.reply is None for x in rows), "trained_on": len(used),
            "answer_correct": right / len(rows) if rows else None,
            "identical_to_teacher": (sum(same) / len(same)) if same and name != "E" else None,
            "mean_chars": sum(len(x.reply or "") for x in rows) / max(1, len(rows))}


def run(config: DistillConfig, out_dir: str | Path, progress: bool = True) -> dict[str, Any]:
    """The whole lab; writes results.json, summary.md, harvest JSONL and plots to out_dir."""
    from cuirass.engine.loader import resolve_path
    from cuirass.keyring import Keyring
    from cuirass.lab.distill import audit, report
    from cuirass.lab.reference import evaluate as ev

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch

    torch.set_num_threads(config.train_threads)
    say = _say(progress)
    say(f"distillation lab: conditions {', '.join(config.conditions)} -> {out_dir}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    requested = config
    config = dataclasses.replace(config, teacher=_snapshot(config.teacher, out / "models" / "teacher"),
                                 decoy=_snapshot(config.decoy, out / "models" / "decoy"))
    conds, skipped = cond.build(config.conditions)
    for name, why in skipped.items():
        say(f"skipping {name}: {why}")
    benign = workload.benign(config)
    gateways: dict[str, dict[str, Any]] = {}
    for kind in ("plain", "defended", "stealth"):
        if any(c.gateway == kind for c in conds):
            gateways[kind] = _harvest_gateway(kind, config, conds, out, benign, progress)
    harvests = {n: h for g in gateways.values() for n, h in g["harvests"].items()}
    base = harvests["A"]
    with (out / "harvest.jsonl").open("w") as f:
        for name, got in harvests.items():
            for x in got:
                f.write(json.dumps({"condition": name, **x.to_dict()}) + "\n")

    _, tokenizer = ev.load(resolve_path(config.teacher))
    keyring = Keyring(master_secret(config.seed).encode())
    students = out / "students"
    say("training the untrained and control students ...")
    t0 = time.perf_counter()
    untrained = student.evaluate(student.train([], tokenizer, config), tokenizer, config)
    gold = [student.Example(x.request.problem.question, x.request.problem.solution) for x in base if x.request.harvest]
    control = student.evaluate(student.train(gold, tokenizer, config, students / audit.CONTROL, progress, "control"),
                               tokenizer, config)
    control["seconds"] = time.perf_counter() - t0

    rows: dict[str, dict[str, Any]] = {}
    suspects: dict[str, audit.Suspect] = {}
    for c in conds:
        t0 = time.perf_counter()
        source = c.harvest_of or c.name
        got = harvests[source]
        used = student.examples(got, c.filter_answers)
        say(f"{c.name}: training a student on {len(used)} examples ...")
        model = student.train(used, tokenizer, config, students / c.slug, progress, f"student {c.name}")
        row = {"title": c.title, "data": _data_summary(c.name, got, base, used),
               "student": student.evaluate(model, tokenizer, config)}
        say(f"{c.name}: accuracy {row['student']['accuracy']:.1%}, held-out loss {row['student']['heldout_loss']:.3f}")
        g = next(g for g in gateways.values() if source in g["harvests"])
        row["exposure"] = g["exposure"][source]
        row["seconds"] = {"harvest": g["seconds"][source], "student": time.perf_counter() - t0}
        by_cohort: dict[str, list[str]] = {}
        for x in got:  # the campaign's own data, grouped by the cohort each answer was keyed to
            cohort = row["exposure"]["account_cohort"].get(x.request.account)
            if cohort and x.request.harvest and x.reply:
                by_cohort.setdefault(cohort, []).append(x.reply)
        row["data"]["token_mark"] = audit.mark_in_harvest(by_cohort, keyring, config.teacher)
        rows[c.name] = row
        canaries = "canary" in c.actions or c.gateway != "plain"
        suspects[c.slug] = audit.Suspect(students / c.slug, g["config_path"], g["data_dir"], canaries)
    if "C:logit_watermark" in rows:  # the null check: A's answers, scored with the keys of the same accounts
        keyed = {a.rsplit("-", 1)[1]: c for a, c in rows["C:logit_watermark"]["exposure"]["account_cohort"].items()}
        by_cohort = {}
        for x in base:
            cohort = keyed.get(x.request.account.rsplit("-", 1)[1])
            if cohort and x.request.harvest and x.reply:
                by_cohort.setdefault(cohort, []).append(x.reply)
        rows["A"]["data"]["token_mark"] = audit.mark_in_harvest(by_cohort, keyring, config.teacher)
    suspects[audit.CONTROL] = audit.Suspect(students / audit.CONTROL, gateways["plain"]["config_path"],
                                            gateways["plain"]["data_dir"], False)

    say(f"auditing {len(suspects)} students over HTTP ({config.audit_queries} probes each) ...")
    probes = list(dict.fromkeys(x.request.problem.question for x in base if x.request.harvest))
    t0 = time.perf_counter()
    try:
        audits = audit.audit_students(suspects, probes, keyring, config.teacher, out / "audit",
                                      queries=config.audit_queries, max_tokens=config.max_tokens, seed=config.seed,
                                      threads=config.threads, concurrency=config.concurrency, device=config.device,
                                      progress=progress)
    except (RuntimeError, ValueError, OSError) as exc:  # the students are saved: the audit can be rerun alone
        say(f"audit failed: {exc}")
        audits = {name: audit.failed(str(exc)) for name in suspects}
    per_audit = (time.perf_counter() - t0) / len(suspects)
    for c in conds:
        rows[c.name]["audit"] = audits[c.slug]
        rows[c.name]["seconds"]["audit"] = per_audit
        keyed = rows[c.name]["exposure"]["cohorts"]
        for ch in ("token", "text"):  # the lab's oracle view: only the keys that marked this campaign's data
            rows[c.name]["audit"][f"{ch}_at_campaign_cohorts"] = audit.at_cohorts(audits[c.slug], ch, keyed)
            rows[c.name]["audit"][f"control_{ch}_at_campaign_cohorts"] = audit.at_cohorts(
                audits[audit.CONTROL], ch, keyed)
    control["audit"] = audits[audit.CONTROL]

    a_acc, a_loss = rows["A"]["student"]["accuracy"], rows["A"]["student"]["heldout_loss"]
    for row in rows.values():
        s = row["student"]
        row["value_ratio"] = value_ratio(s["accuracy"], untrained["accuracy"], a_acc)
        row["value_ratio_loss"] = value_ratio(s["heldout_loss"], untrained["heldout_loss"], a_loss)
    benign_rows = {kind: _benign_summary(g["benign"], gateways["plain"]["benign"]) for kind, g in gateways.items()}
    results = {"config": requested.to_dict(), "models": {"teacher": config.teacher, "decoy": config.decoy},
               "skipped": skipped, "untrained": untrained, "control": control,
               "conditions": rows, "benign": benign_rows,
               "audit_method": "cuirass.prove.endpoint.audit_endpoint over HTTP",
               "wall_seconds": time.perf_counter() - started}
    report.write(results, out)
    return results
