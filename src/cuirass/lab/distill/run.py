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
from cuirass.lab.distill.stats import value_ratio, value_ratio_interval, wilson
from cuirass.lab.reference import evaluate as ev


def _say(progress: bool) -> Any:
    t0 = time.perf_counter()
    return (
        (lambda msg: print(f"[{time.perf_counter() - t0:6.0f} s] {msg}", file=sys.stderr, flush=True))
        if progress
        else (lambda msg: None)
    )


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


def _harvest_gateway(
    kind: str,
    config: DistillConfig,
    conds: list[cond.Condition],
    out: Path,
    benign: list[workload.Request],
    progress: bool,
) -> dict[str, Any]:
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
    gw_cfg = gateway_config(
        config.teacher,
        config.decoy,
        policy,
        detection=kind != "plain",
        threads=config.threads,
        concurrency=config.concurrency,
        device=config.device,
    )
    say(f"[{kind}] starting gateway ({', '.join(c.name for c in mine)}; {len(specs)} accounts) ...")
    result: dict[str, Any] = {"harvests": {}, "exposure": {}, "seconds": {}}
    secret = {"CUIRASS_MASTER_SECRET": master_secret(config.seed)}
    with Gateway(out / f"gateway-{kind}", gw_cfg, specs, env=secret) as gw:
        result["config_path"], result["data_dir"] = gw.config_path, gw.data_dir

        def send(reqs: list[workload.Request], desc: str) -> list[harvest.Exchange]:
            return harvest.send(
                reqs,
                gw.base_url,
                gw.keys,
                max_tokens=config.max_tokens,
                concurrency=config.concurrency,
                progress=progress,
                desc=desc,
            )

        warm = send([benign[0]], f"{kind}: warm-up")  # loads the model
        if warm[0].reply is None:
            raise RuntimeError(f"the {kind} gateway does not answer: {warm[0].error}")
        first = True
        for c in mine:
            t0 = time.perf_counter()
            reqs = workload.interleave(benign, campaigns[c.name], config.seed) if first else campaigns[c.name]
            got = send(reqs, f"{kind}: {c.name}")
            result["seconds"][c.name] = time.perf_counter() - t0
            if first:
                result["benign"] = [x for x in got if x.request.role == "benign"]
                first = False
            result["harvests"][c.name] = [x for x in got if x.request.role != "benign"]
        time.sleep(0.5)  # the event writer flushes every 50 ms
        for c in mine:
            reqs = campaigns[c.name]
            result["exposure"][c.name] = exposure(
                gw.db_path,
                {r.account for r in reqs},
                {r.prompt for r in reqs if r.harvest},
                {r.account for r in benign},
            )
    return result


def _benign_summary(exchanges: list[harvest.Exchange], reference: list[harvest.Exchange]) -> dict[str, Any]:
    right = sum(x.reply is not None and ev.final_answer_correct(x.reply, x.request.problem.answer) for x in exchanges)
    same = sum((a.reasoning, a.reply) == (b.reasoning, b.reply) for a, b in zip(exchanges, reference, strict=True))
    n = len(exchanges)
    return {
        "n": n,
        "accuracy": right / n if n else None,
        "ci95": list(wilson(right, n)),
        "identical_to_A": same / n if n else None,  # the trace and the answer, byte for byte
        "with_trace": sum(x.reasoning is not None for x in exchanges) / n if n else None,
        "errors": sum(x.reply is None for x in exchanges),
    }


def _data_summary(
    name: str, got: list[harvest.Exchange], base: list[harvest.Exchange], used: list[student.Example]
) -> dict[str, Any]:
    """How the harvested data compares with what the bare teacher said for the same requests (A)."""
    rows = [x for x in got if x.request.harvest]
    base_by = {(x.request.problem.question, x.request.seed): x.solution for x in base if x.request.harvest}
    same = [
        x.reply is not None and x.solution == base_by.get((x.request.problem.question, x.request.seed)) for x in rows
    ]
    right = sum(x.reply is not None and ev.final_answer_correct(x.reply, x.request.problem.answer) for x in rows)
    return {
        "harvested": len(rows),
        "refused": sum(x.reply is None for x in rows),
        "trained_on": len(used),
        "answer_correct": right / len(rows) if rows else None,
        "identical_to_teacher": (sum(same) / len(same)) if same and name != "E" else None,
        "with_trace": sum(x.reasoning is not None for x in rows) / len(rows) if rows else None,
        "mean_chars": sum(len(x.solution) for x in rows) / max(1, len(rows)),
    }


@dataclasses.dataclass(slots=True)
class _Lab:
    """What the phases of one run share: the run's config (models snapshotted), where it writes, its log."""

    config: DistillConfig
    out: Path
    progress: bool
    say: Any
    conds: list[cond.Condition]
    keyring: Any = None  # the master secret's keys (every gateway of the run shares them)


@dataclasses.dataclass(slots=True)
class _Students:
    """Phase 3's result: the reference points and one row per condition, with the students to audit."""

    untrained: dict[str, Any]
    control: dict[str, Any]
    rows: dict[str, dict[str, Any]]
    suspects: dict[str, Any]  # name -> audit.Suspect


def run(config: DistillConfig, out_dir: str | Path, progress: bool = True) -> dict[str, Any]:
    """The whole lab; writes results.json, summary.md, harvest JSONL and plots to out_dir.

    Phases: prepare (snapshot the models, pick the conditions) -> harvest through the gateways -> train
    and evaluate the students -> audit them over HTTP -> report."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch

    torch.set_num_threads(config.train_threads)
    started = time.perf_counter()
    lab, skipped = _prepare(config, Path(out_dir), progress)
    gateways = _harvest(lab)
    students = _train_students(lab, gateways)
    _audit_students(lab, gateways, students)
    return _report(lab, config, skipped, gateways, students, started)


def _prepare(config: DistillConfig, out: Path, progress: bool) -> tuple[_Lab, dict[str, str]]:
    """Snapshot the teacher and decoy into the run's folder and build the conditions (skipped: name -> why)."""
    say = _say(progress)
    say(f"distillation lab: conditions {', '.join(config.conditions)} -> {out}")
    out.mkdir(parents=True, exist_ok=True)
    config = dataclasses.replace(
        config,
        teacher=_snapshot(config.teacher, out / "models" / "teacher"),
        decoy=_snapshot(config.decoy, out / "models" / "decoy"),
    )
    conds, skipped = cond.build(config.conditions)
    for name, why in skipped.items():
        say(f"skipping {name}: {why}")
    return _Lab(config, out, progress, say, conds), skipped


def _harvest(lab: _Lab) -> dict[str, dict[str, Any]]:
    """Every gateway kind the conditions need, each harvested by its campaigns (and the benign users);
    the harvests also go to harvest.jsonl. Returns {kind: `_harvest_gateway` result}."""
    benign = workload.benign(lab.config)
    gateways: dict[str, dict[str, Any]] = {}
    for kind in ("plain", "defended", "stealth"):
        if any(c.gateway == kind for c in lab.conds):
            gateways[kind] = _harvest_gateway(kind, lab.config, lab.conds, lab.out, benign, lab.progress)
    with (lab.out / "harvest.jsonl").open("w") as f:
        for name, got in _harvests(gateways).items():
            for x in got:
                f.write(json.dumps({"condition": name, **x.to_dict()}) + "\n")
    return gateways


def _harvests(gateways: dict[str, dict[str, Any]]) -> dict[str, list[harvest.Exchange]]:
    return {n: h for g in gateways.values() for n, h in g["harvests"].items()}


def _train_students(lab: _Lab, gateways: dict[str, dict[str, Any]]) -> _Students:
    """An untrained student, a control student (the reference solutions), and a student per condition on
    its harvest; each evaluated, with how strongly its training data carries the token mark."""
    from cuirass.engine.loader import resolve_path
    from cuirass.keyring import Keyring
    from cuirass.lab.distill import audit

    config, say = lab.config, lab.say
    harvests = _harvests(gateways)
    base = harvests["A"]
    _, tokenizer = ev.load(resolve_path(config.teacher))
    lab.keyring = Keyring(master_secret(config.seed).encode())
    students = lab.out / "students"
    say("training the untrained and control students ...")
    t0 = time.perf_counter()
    untrained = student.evaluate(student.train([], tokenizer, config), tokenizer, config)
    gold = [student.Example(x.request.problem.question, x.request.problem.solution) for x in base if x.request.harvest]
    control = student.evaluate(
        student.train(gold, tokenizer, config, students / audit.CONTROL, lab.progress, "control"), tokenizer, config
    )
    control["seconds"] = time.perf_counter() - t0

    rows: dict[str, dict[str, Any]] = {}
    suspects: dict[str, audit.Suspect] = {}
    for c in lab.conds:
        t0 = time.perf_counter()
        source = c.harvest_of or c.name
        got = harvests[source]
        used = student.examples(got, c.filter_answers)
        say(f"{c.name}: training a student on {len(used)} examples ...")
        model = student.train(used, tokenizer, config, students / c.slug, lab.progress, f"student {c.name}")
        row: dict[str, Any] = {
            "title": c.title,
            "data": _data_summary(c.name, got, base, used),
            "student": student.evaluate(model, tokenizer, config),
        }
        say(f"{c.name}: accuracy {row['student']['accuracy']:.1%}, held-out loss {row['student']['heldout_loss']:.3f}")
        if config.answers_only:
            row["answers_only"] = _answers_only(lab, c, got, tokenizer, row["student"])
        g = next(g for g in gateways.values() if source in g["harvests"])
        row["exposure"] = g["exposure"][source]
        row["seconds"] = {"harvest": g["seconds"][source], "student": time.perf_counter() - t0}
        by_cohort: dict[str, list[str]] = {}
        pairs: dict[str, list[tuple[str, str]]] = {}
        for x in got:  # the campaign's own data, grouped by the cohort each answer was keyed to
            cohort = row["exposure"]["account_cohort"].get(x.request.account)
            if cohort and x.request.harvest and x.reply:
                by_cohort.setdefault(cohort, []).append(x.solution)
                pairs.setdefault(cohort, []).append((x.request.prompt, x.reply))
        row["data"]["token_mark"] = audit.mark_in_harvest(by_cohort, lab.keyring, config.teacher)
        row["data"]["signature_mark"] = audit.signature_in_harvest(pairs, lab.keyring)
        rows[c.name] = row
        canaries = "canary" in c.actions or c.gateway != "plain"
        suspects[c.slug] = audit.Suspect(students / c.slug, g["config_path"], g["data_dir"], canaries)
    if "C:logit_watermark" in rows:  # the null check: A's answers, scored with the keys of the same accounts
        keyed = {a.rsplit("-", 1)[1]: c for a, c in rows["C:logit_watermark"]["exposure"]["account_cohort"].items()}
        by_cohort = {}
        for x in base:
            cohort = keyed.get(x.request.account.rsplit("-", 1)[1])
            if cohort and x.request.harvest and x.reply:
                by_cohort.setdefault(cohort, []).append(x.solution)
        rows["A"]["data"]["token_mark"] = audit.mark_in_harvest(by_cohort, lab.keyring, config.teacher)
    suspects[audit.CONTROL] = audit.Suspect(
        students / audit.CONTROL, gateways["plain"]["config_path"], gateways["plain"]["data_dir"], False
    )
    return _Students(untrained, control, rows, suspects)


def _answers_only(
    lab: _Lab, c: cond.Condition, got: list[harvest.Exchange], tokenizer: Any, traced: dict[str, Any]
) -> dict[str, Any]:
    """The same harvest without its traces (what an attacker keeps of an API that hides the reasoning): a
    student trained on the answers alone, evaluated like the others (not saved, not audited). A harvest
    with no trace left in it is the same data as the traces student's, so that student stands for it."""
    if not any(x.reasoning for x in got if x.request.harvest):
        return {"same_as_traces": True, "student": traced}
    used = student.examples(got, c.filter_answers, traces=False)
    lab.say(f"{c.name}: training an answers-only student on {len(used)} examples ...")
    model = student.train(used, tokenizer, lab.config, None, lab.progress, f"student {c.name} (answers only)")
    scored = student.evaluate(model, tokenizer, lab.config)
    lab.say(f"{c.name} (answers only): accuracy {scored['accuracy']:.1%}")
    return {"same_as_traces": False, "trained_on": len(used), "student": scored}


def _audit_students(lab: _Lab, gateways: dict[str, dict[str, Any]], s: _Students) -> None:
    """Audit every student and the control over HTTP, as an operator would; the results go into the rows."""
    from cuirass.lab.distill import audit
    from cuirass.prove.probes import spread

    config = lab.config
    lab.say(f"auditing {len(s.suspects)} students over HTTP ({config.audit_queries} probes each) ...")
    base = _harvests(gateways)["A"]
    probes = spread([x.request.problem.question for x in base if x.request.harvest])
    t0 = time.perf_counter()
    try:
        audits = audit.audit_students(
            s.suspects,
            probes,
            lab.keyring,
            config.teacher,
            lab.out / "audit",
            queries=config.audit_queries,
            max_tokens=config.max_tokens,
            seed=config.seed,
            threads=config.threads,
            concurrency=config.concurrency,
            device=config.device,
            progress=lab.progress,
        )
    except (RuntimeError, ValueError, OSError) as exc:  # the students are saved: the audit can be rerun alone
        lab.say(f"audit failed: {exc}")
        audits = {name: audit.failed(str(exc)) for name in s.suspects}
    lab.say(f"auditing {len(s.suspects)} students by their weights ({config.weights_queries} probes each) ...")
    for name, suspect in s.suspects.items():
        http = lab.out / "audit" / f"audit-{name}.json"
        try:
            audits[name]["access"] = audit.access_modes(
                suspect,
                probes,
                lab.keyring,
                config.teacher,
                json.loads(http.read_text()) if http.is_file() else None,
                queries=config.weights_queries,
                max_tokens=config.max_tokens,
                seed=config.seed,
                threads=config.train_threads,
                device=config.device,
                where=lab.out / "audit",
            )
        except (RuntimeError, ValueError, OSError) as exc:
            lab.say(f"weights audit of {name} failed: {exc}")
            audits[name]["access"] = {"error": str(exc)}
    per_audit = (time.perf_counter() - t0) / len(s.suspects)
    for c in lab.conds:
        row = s.rows[c.name]
        row["audit"] = audits[c.slug]
        row["seconds"]["audit"] = per_audit
        keyed = row["exposure"]["cohorts"]
        for ch in ("token", "text"):  # the lab's oracle view: only the keys that marked this campaign's data
            row["audit"][f"{ch}_at_campaign_cohorts"] = audit.at_cohorts(audits[c.slug], ch, keyed)
            row["audit"][f"control_{ch}_at_campaign_cohorts"] = audit.at_cohorts(audits[audit.CONTROL], ch, keyed)
    s.control["audit"] = audits[audit.CONTROL]


def _report(
    lab: _Lab,
    requested: DistillConfig,
    skipped: dict[str, str],
    gateways: dict[str, dict[str, Any]],
    s: _Students,
    started: float,
) -> dict[str, Any]:
    """Value ratios against A and the untrained student, the benign users' view; results.json and the rest."""
    from cuirass.lab.distill import report

    rows = s.rows
    a_acc, a_loss = rows["A"]["student"]["accuracy"], rows["A"]["student"]["heldout_loss"]
    for row in rows.values():
        st = row["student"]
        row["value_ratio"] = value_ratio(st["accuracy"], s.untrained["accuracy"], a_acc)
        row["value_ratio_loss"] = value_ratio(st["heldout_loss"], s.untrained["heldout_loss"], a_loss)
        row["value_ratio_ci95"] = value_ratio_interval(st, s.untrained, rows["A"]["student"])
        if "answers_only" in row:  # against A's traces student: what the attacker keeps without traces
            ao = row["answers_only"]["student"]
            row["answers_only"]["value_ratio"] = value_ratio(ao["accuracy"], s.untrained["accuracy"], a_acc)
            row["answers_only"]["value_ratio_loss"] = value_ratio(
                ao["heldout_loss"], s.untrained["heldout_loss"], a_loss
            )
    benign_rows = {kind: _benign_summary(g["benign"], gateways["plain"]["benign"]) for kind, g in gateways.items()}
    results = {
        "config": requested.to_dict(),
        "models": {"teacher": lab.config.teacher, "decoy": lab.config.decoy},
        "skipped": skipped,
        "untrained": s.untrained,
        "control": s.control,
        "conditions": rows,
        "benign": benign_rows,
        "audit_method": "cuirass.prove.endpoint.audit_endpoint over HTTP",
        "wall_seconds": time.perf_counter() - started,
    }
    report.write(results, lab.out)
    return results
