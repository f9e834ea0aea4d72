"""PNG figures of a detection evaluation: ROC curves (log FPR), leakage over event time, adaptive rounds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from cuirass.lab import metrics
from cuirass.lab.assess import Verdicts


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def roc(verdicts: list[Verdicts], labels: dict[str, Any], times: dict[str, np.ndarray], out: Path) -> Path:
    """ROC of every detector on the test accounts, FPR on a log axis down to 1e-4."""
    plt = _pyplot()
    info = labels["accounts"]
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for v in verdicts:
        pos = [v.scores.get(a, 0.0) for a in times if info[a]["label"] == "attack"]
        neg = [v.scores.get(a, 0.0) for a in times if info[a]["label"] == "benign"]
        fpr, tpr = metrics.roc_curve(pos, neg)
        ax.step(np.maximum(fpr, 1e-4), tpr, where="post", label=f"{v.name} (AUC {metrics.roc_auc(pos, neg):.3f})")
    for f in (0.001, 0.01):
        ax.axvline(f, color="grey", lw=0.6, ls=":")
    ax.set(
        xscale="log",
        xlim=(1e-4, 1),
        ylim=(0, 1.01),
        xlabel="benign-account false positive rate",
        ylabel="attacker-account recall",
        title="Per-account ROC (test set)",
    )
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def leakage(
    v: Verdicts, labels: dict[str, Any], times: dict[str, np.ndarray], window: dict[str, float], out: Path
) -> Path:
    """Per campaign kind: share of its requests so far that were served before the account was flagged."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    by_kind: dict[str, dict[str, np.ndarray]] = {}
    for c in labels["campaigns"]:
        by_kind.setdefault(c["kind"], {}).update({a: times[a] for a in c["accounts"] if a in times})
    for kind, member_times in sorted(by_kind.items()):
        grid, share = metrics.leakage_curve(member_times, v.flagged_at)
        if len(grid):
            ax.plot((grid - window["start"]) / 86400.0, share, label=kind)
    ax.axvline((window["release"] - window["start"]) / 86400.0, color="grey", ls="--", lw=0.8, label="new model")
    ax.set(
        xlabel="event time (days)",
        ylabel="cumulative share served unflagged",
        ylim=(0, 1.02),
        title=f"Leakage over time ({v.name})",
    )
    ax.legend(loc="lower left", fontsize="small")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def rounds(rows: list[dict[str, Any]], out: Path) -> Path:
    """Adaptive attacker: recall and leakage per round (left), the attacker's cost per 1k harvested answers (right)."""
    plt = _pyplot()
    fig, (ax, cost) = plt.subplots(1, 2, figsize=(10, 4))
    xs = [row["round"] for row in rows]
    ax.plot(xs, [row["recall"] for row in rows], "o-", label="recall (accounts flagged)")
    ax.plot(xs, [row["leakage"] for row in rows], "s-", label="leakage (served before the flag)")
    ax.plot(xs, [row["benign_fpr"] for row in rows], "^:", label="benign FPR")
    ax.set(xlabel="round", ylabel="share", ylim=(0, 1.02), xticks=xs, title="Detection per round")
    ax.legend(loc="best", fontsize="small")
    for key in ("accounts", "cards", "addresses", "days"):
        ys = [row["per_1k_answers"][key] for row in rows]
        cost.plot(
            xs, [y if np.isfinite(y) else np.nan for y in ys], "o-", label=key if key != "days" else "account-days"
        )
    cost.set(xlabel="round", ylabel="per 1,000 harvested answers", yscale="log", xticks=xs, title="Attacker's cost")
    cost.legend(loc="best", fontsize="small")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
