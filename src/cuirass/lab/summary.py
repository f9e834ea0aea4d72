"""Human-readable rendering of a detection evaluation: Markdown tables (also printed at the end of a run)."""

from __future__ import annotations

import math
from typing import Any


def _pct(x: float | None, digits: int = 1) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.{digits}f}%"


def _num(x: float | None, digits: int = 3) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in rows]


def headline(results: dict[str, Any]) -> list[str]:
    """One row per detector: AUC, recall at the reported FPRs, and its operating point."""
    fprs = list(next(iter(results["detectors"].values()))["at_fpr"])
    header = (
        ["detector", "ROC AUC"]
        + [f"recall @ FPR {_pct(float(f))}" for f in fprs]
        + ["operating point", "benign FPR", "account recall", "campaigns caught"]
    )
    rows = []
    for name, d in results["detectors"].items():
        op, cr = d["operating_point"], d["campaign_recall"]["all"]
        rows.append(
            [name, _num(d["auc"])]
            + [_pct(d["at_fpr"][f]["recall"]) for f in fprs]
            + [
                op["how"],
                f"{_pct(op['benign_fpr'], 2)} ({op['benign_flagged']}/{op['benign_accounts']})",
                _pct(op["recall"]),
                f"{cr['caught']}/{cr['campaigns']}",
            ]
        )
    return _table(header, rows)


def by_campaign_kind(results: dict[str, Any]) -> list[str]:
    """Per campaign kind and detector: campaigns caught, share of accounts flagged, leakage."""
    names = list(results["detectors"])
    first = results["detectors"][names[0]]
    held = {c["kind"]: c["held_out"] for c in first["campaigns"]}
    header = ["campaign kind", "held out"] + [f"{n}: {col}" for n in names for col in ("caught", "flagged", "leakage")]
    rows = []
    for kind in first["campaign_recall"]:
        if kind == "all":
            continue
        row = [kind, "yes" if held.get(kind) else "no"]
        for n in names:
            k = results["detectors"][n]["campaign_recall"].get(kind)
            row += [f"{k['caught']}/{k['campaigns']}", _pct(k["flagged_share"]), _pct(k["leakage"])] if k else ["-"] * 3
        rows.append(row)
    return _table(header, rows)


def by_account_kind(results: dict[str, Any]) -> list[str]:
    """Share flagged and mean score per account kind (benign kinds show where false positives come from)."""
    names = list(results["detectors"])[:2]
    kinds = results["detectors"][names[0]]["by_kind"]
    header = ["label", "kind", "accounts"] + [f"{n}: {c}" for n in names for c in ("flagged", "mean score")]
    rows = []
    for i, k in enumerate(kinds):
        row = [k["label"], k["kind"], str(k["accounts"])]
        for n in names:
            other = results["detectors"][n]["by_kind"][i]
            row += [_pct(other["flagged_share"], 2), _num(other["mean_score"])]
        rows.append(row)
    return _table(header, rows)


def false_positives(results: dict[str, Any], limit: int = 20) -> list[str]:
    lines = []
    for name, d in list(results["detectors"].items())[:2]:
        fps = d["false_positives"][:limit]
        lines.append(
            f"**{name}**: {d['operating_point']['benign_flagged']} benign accounts flagged" + (":" if fps else ".")
        )
        lines += [
            f"- `{fp['account']}` ({fp['kind']}, {fp['events']} requests, score {_num(fp['score'])}"
            + (f", campaign {fp['campaign']}" if fp.get("campaign") else "")
            + "): "
            + "; ".join(fp["reasons"][:4])
            for fp in fps
        ]
        lines.append("")
    return lines


def impure_campaigns(results: dict[str, Any], limit: int = 12) -> list[str]:
    """Detected campaigns holding benign accounts (Cuirass only): make-up and reasons."""
    rows = results["detectors"].get("cuirass", {}).get("impure_campaigns", [])[:limit]
    if not rows:
        return ["No detected campaign contains a benign account.", ""]
    lines = []
    for r in rows:
        make_up = ", ".join(f"{k} {n}" for k, n in r["make_up"].items())
        lines.append(
            f"- `{r['id']}`: {r['accounts']} accounts ({make_up}); {r['benign_flagged']} benign flagged. "
            + "; ".join(r["reasons"])
        )
    return [*lines, ""]


def markdown(results: dict[str, Any]) -> str:
    cfg, traffic = results["config"], results["traffic"]
    kinds = ", ".join(f"{c['kind']}×{c['accounts']}" for c in cfg["campaigns"])
    parts = [
        "# Detection evaluation",
        "",
        f"Seed {cfg['seed']}, {cfg['days']:g} days, {cfg['benign_accounts']} benign people (+ app backends), "
        f"campaign specs: {kinds}. {traffic['events']:,} events; calibration on {traffic['calibration_events']:,} "
        f"events of benign half A, test on {traffic['test_events']:,} events ({traffic['test_accounts']:,} accounts). "
        f"Target benign-account FPR {_pct(cfg['fpr'], 2)}; a campaign is caught when "
        f">= {_pct(cfg['catch_share'], 0)} of its accounts are flagged.",
        "",
        "## Headline",
        "",
        *headline(results),
        "",
        "## Campaigns",
        "",
        *by_campaign_kind(results),
        "",
        "## Accounts by kind",
        "",
        *by_account_kind(results),
        "",
        "## False positives",
        "",
        *false_positives(results),
        "## Detected campaigns that contain benign accounts",
        "",
        *impure_campaigns(results),
        "## Timings",
        "",
        ", ".join(f"{k} {v:.1f}" for k, v in results["timings"].items()),
        "",
    ]
    if results.get("peer_note"):
        parts += [f"Peer: {results['peer_note']}", ""]
    return "\n".join(parts)
