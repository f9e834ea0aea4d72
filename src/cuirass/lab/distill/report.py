"""The distillation lab's report: results.json, summary.md (the tables the README quotes) and two PNGs."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from cuirass.lab.detect_eval import finite


def _fmt(x: float | None, spec: str = ".2f") -> str:
    return "–" if x is None else format(x, spec)


def _p(p: float | None) -> str:
    if p is None:
        return "–"
    return f"{p:.2g}" if p >= 1e-3 else f"{p:.1e}"


def table(results: dict[str, Any]) -> list[str]:
    """One Markdown row per condition."""
    lines = [
        "| condition | student accuracy (95% CI) | value ratio (acc., 95% CI) | value ratio (loss) | held-out loss | "
        "answers-only student: accuracy, value ratio | "
        "data = teacher's | data with trace | data answer-correct | data marked p (token / signature) | "
        "served before detection | "
        "audit p (student) | "
        "token test at the campaign's cohorts: student / control | wall s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results["conditions"].items():
        s, d, e, a = r["student"], r["data"], r["exposure"], r["audit"]
        lo, hi = s["ci95"]
        secs = sum(r["seconds"].values())
        lines.append(
            f"| **{name}** {r['title']} | {s['accuracy']:.1%} ({lo:.1%}–{hi:.1%}) | "
            f"{_fmt(r['value_ratio'])}{_interval(r.get('value_ratio_ci95'))} | {_fmt(r['value_ratio_loss'])} | "
            f"{s['heldout_loss']:.3f} | {_answers_only(r.get('answers_only'))} | "
            f"{_fmt(d['identical_to_teacher'], '.0%')} | {_fmt(d.get('with_trace'), '.0%')} | "
            f"{_fmt(d['answer_correct'], '.0%')} | "
            f"{_p((d.get('token_mark') or {}).get('p'))} / {_p((d.get('signature_mark') or {}).get('p'))} | "
            f"{_fmt(e['served_before_detection'], '.0%')} | {_p(a['p'])} ({a['channel'] or 'not run'}) | "
            f"{_oracle(a)} | {secs:.0f} |"
        )
    u, c = results["untrained"], results["control"]
    lines.append(f"| untrained student | {u['accuracy']:.1%} | 0 | 0 | {u['heldout_loss']:.3f} | | | | | | | | |")
    lines.append(
        f"| control (gold solutions) | {c['accuracy']:.1%} | | | {c['heldout_loss']:.3f} | | | | | | | "
        f"{_p(c['audit']['p'])} ({c['audit']['channel']}) | | {c['seconds']:.0f} |"
    )
    return lines


def _interval(ci: list[float] | None) -> str:
    return f" ({ci[0]:.2f}–{ci[1]:.2f})" if ci else ""


def _answers_only(ao: dict[str, Any] | None) -> str:
    if not ao:
        return "–"
    if ao["same_as_traces"]:
        return "same data (no trace harvested)"
    return f"{ao['student']['accuracy']:.1%}, {_fmt(ao.get('value_ratio'))}"


def _oracle(a: dict[str, Any]) -> str:
    s, c = a.get("token_at_campaign_cohorts"), a.get("control_token_at_campaign_cohorts")
    if not s or not c:
        return "–"
    return f"{_p(s['p'])} (z {s['z']:.1f}) / {_p(c['p'])} (z {c['z']:.1f})"


def access_table(results: dict[str, Any]) -> list[str]:
    """Per student, what each kind of access proves: black box (the HTTP audit's answers) and open weights
    (answered in-process, with the likelihood channel), the probes each needed for p < 1e-6 (Holm), and the
    false-accusation check on keys that never marked anything."""
    lines = [
        "| student | black box: Holm p at n probes (channel) | black box: probes to p < 1e-6 | "
        "weights: Holm p at n probes (channel) | weights: probes to p < 1e-6 | "
        "clean keys: min p, KS p (black box / weights) |",
        "|---|---|---|---|---|---|",
    ]
    students = {n: r["audit"] for n, r in results["conditions"].items()}
    students["control"] = results["control"]["audit"]
    for name, a in students.items():
        acc = a.get("access") or {}
        if not acc or "error" in acc:
            lines.append(f"| {name} | {acc.get('error', 'not run')} | | | | |")
            continue
        bb, w = acc.get("black_box"), acc["weights"]
        last = bb["curve"][-1] if bb and bb["curve"] else None
        wl = w["curve"][-1] if w["curve"] else None
        lines.append(
            f"| {name} | "
            + (f"{_p(last['p'])} at {last['n']} ({last['channel']})" if last else "–")
            + f" | {_needed(bb)} | "
            + (f"{_p(wl['p'])} at {wl['n']} ({wl['channel']})" if wl else "–")
            + f" | {_needed(w)} | {_clean(bb)} / {_clean(w)} |"
        )
    return lines


def _needed(mode: dict[str, Any] | None) -> str:
    if not mode:
        return "–"
    return str(mode["needed"]) if mode["needed"] is not None else f"> {mode['curve'][-1]['n']}"


def _clean(mode: dict[str, Any] | None) -> str:
    if not mode:
        return "–"
    c = mode["clean"]
    return f"{_p(c['min_p'])}, {_p(c['ks']['p_value'])} ({c['n_keys']} keys)"


def benign_table(results: dict[str, Any]) -> list[str]:
    lines = [
        "| gateway | benign requests | benign accuracy (95% CI) | replies identical to A | "
        "benign accounts flagged "
        "| benign requests defended |",
        "|---|---|---|---|---|---|",
    ]
    for kind, b in results["benign"].items():
        ex = (_gateway_of(results, kind) or {}).get("exposure")
        flagged = f"{ex['benign_flagged']}/{ex['benign_accounts']}" if ex else "–"
        defended = f"{ex['benign_defended']}/{ex['benign_requests']}" if ex else "–"
        lo, hi = b["ci95"]
        lines.append(
            f"| {kind} | {b['n']} | {_fmt(b['accuracy'], '.1%')} ({lo:.1%}–{hi:.1%}) | "
            f"{_fmt(b['identical_to_A'], '.1%')} | {flagged} | {defended} |"
        )
    return lines


def _gateway_of(results: dict[str, Any], kind: str) -> dict[str, Any] | None:
    first = {"plain": "A", "defended": "B", "stealth": "E"}[kind]
    gateway: dict[str, Any] | None = results["conditions"].get(first)
    return gateway


def markdown(results: dict[str, Any]) -> str:
    cfg = results["config"]
    out = [
        f"# Distillation lab (seed {cfg['seed']})",
        "",
        f"Teacher `{cfg['teacher']}`, decoy `{cfg['decoy']}`; attacker: {cfg['campaign_queries']} harvested "
        f"solutions per condition from {cfg['campaign_accounts']} accounts; student "
        f"{cfg['student']['layers']}x{cfg['student']['hidden']} trained {cfg['train_steps']} steps "
        f"(batch {cfg['batch_size']}); evaluation on {cfg['eval_n']} held-out problems (greedy); audit with "
        f"{cfg['audit_queries']} probe queries ({results['audit_method']}). Wall time "
        f"{results['wall_seconds'] / 60:.1f} min.",
        "",
        "Value ratio = (student − untrained) / (A's student − untrained), by accuracy (95% interval: a paired "
        "bootstrap over the held-out problems) and by held-out loss (per-token loss of the reference worked "
        "solutions). The answers-only student is trained on the same harvest without its reasoning traces; its "
        "value ratio is against A's student on traces and answers. Audit p = smallest Holm-corrected p-value over "
        "every (channel, cohort) key and canary test, as `audit_endpoint` reports it. The last audit column is "
        "the lab's oracle view: the token-watermark test at only the cohorts that keyed this campaign's answers "
        "(Bonferroni over them), for the student and for the control.",
        "",
    ]
    out += [*table(results), "", "## Benign users", "", *benign_table(results)]
    if any("access" in r["audit"] for r in results["conditions"].values()):
        out += ["", "## Provenance by access", "", *access_table(results)]
    if results["skipped"]:
        out += ["", "## Not run", ""] + [f"- {k}: {v}" for k, v in results["skipped"].items()]
    out += ["", "![accuracy](accuracy.png)", "", "![audit](audit.png)", ""]
    return "\n".join(out)


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_accuracy(results: dict[str, Any], out: Path) -> Path:
    """Student accuracy (95% Wilson interval), and value ratio by accuracy (95% bootstrap interval) of the
    students on traces and answers beside those on answers only, per condition."""
    plt = _pyplot()
    rows = results["conditions"]
    names = list(rows)
    acc = [rows[n]["student"]["accuracy"] for n in names]
    ci = [rows[n]["student"]["ci95"] for n in names]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.4))
    xs = list(range(len(names)))
    ax1.bar(
        xs,
        acc,
        color=["#555" if n == "A" else "#3a7" for n in names],
        yerr=[[max(0.0, a - c[0]) for a, c in zip(acc, ci)], [max(0.0, c[1] - a) for a, c in zip(acc, ci)]],
        capsize=3,
    )
    ax1.axhline(results["untrained"]["accuracy"], color="k", ls=":", lw=1, label="untrained student")
    ax1.set(xticks=xs, ylabel="held-out final-answer accuracy", title="Student accuracy (95% CI)")
    ax1.set_xticklabels(names, rotation=45, ha="right")
    ax1.legend(loc="upper right")
    ratio = [rows[n]["value_ratio"] or 0.0 for n in names]
    bounds = [rows[n].get("value_ratio_ci95") or [r, r] for n, r in zip(names, ratio)]
    err = [[max(0.0, r - b[0]) for r, b in zip(ratio, bounds)], [max(0.0, b[1] - r) for r, b in zip(ratio, bounds)]]
    w = 0.4
    ax2.bar([x - w / 2 for x in xs], ratio, w, yerr=err, capsize=2, color="#37a", label="traces + answers")
    only = [(rows[n].get("answers_only") or {}).get("value_ratio") or 0.0 for n in names]
    ax2.bar([x + w / 2 for x in xs], only, w, color="#bbb", hatch="//", label="answers only")
    ax2.axhline(0.1, color="r", ls="--", lw=1, label="target 0.1 (B, D)")
    ax2.axhline(0.2, color="r", ls=":", lw=1, label="target 0.2 (E)")
    ax2.set(xticks=xs, ylabel="value ratio (accuracy)", title="Share of A's gain the student kept")
    ax2.set_xticklabels(names, rotation=45, ha="right")
    ax2.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def plot_audit(results: dict[str, Any], out: Path) -> Path:
    """−log10 audit p-value per student, the control's beside them, and the 0.01 and 1e-6 lines."""
    plt = _pyplot()
    names = [*results["conditions"], "control"]
    ps = [results["conditions"][n]["audit"]["p"] for n in names[:-1]] + [results["control"]["audit"]["p"]]
    ys = [-math.log10(max(p if p is not None else 1.0, 1e-300)) for p in ps]
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.bar(range(len(names)), ys, color=["#a33" if y >= 2 else "#999" for y in ys])
    ax.axhline(2, color="k", ls=":", lw=1, label="p = 0.01")
    ax.axhline(6, color="r", ls="--", lw=1, label="p = 1e-6 (target)")
    ax.set(xticks=list(range(len(names))), ylabel="−log10 audit p (Holm)", title="Audit of each student")
    ax.set_xticklabels(names, rotation=45, ha="right")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def write(results: dict[str, Any], out: Path) -> None:
    (out / "results.json").write_text(json.dumps(finite(results), indent=2, default=str))
    (out / "summary.md").write_text(markdown(results))
    plot_accuracy(results, out / "accuracy.png")
    plot_audit(results, out / "audit.png")
