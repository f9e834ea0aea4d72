"""Figures of an audit report, as inline PNG (base64) so the HTML needs no other file.

1. The null distribution of the pooled score, z = (X - gamma n) / sqrt(n gamma (1 - gamma)), with
   X ~ Binomial(n, gamma) (exact pmf, drawn per channel), and every key's observed z marked on it.
2. A p-value QQ plot: sorted -log10 p of all keys against the Uniform(0, 1) expectation -log10(i/(m+1)),
   for the corpus and the control; null keys follow the diagonal, a watermark sits far above it.
"""

from __future__ import annotations

import base64
import io
import math
from typing import Any

import numpy as np
from scipy.stats import binom


def available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ModuleNotFoundError:
        return False
    return True


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def null_plot(report: dict[str, Any]) -> str:
    """Base64 PNG: the exact null of each channel's pooled z-score, with every key's observed z."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n in report["channels"] if any(t["channel"] == n for t in report["tests"])]  # key channels
    fig, axes = plt.subplots(1, len(names), figsize=(6.5 * len(names), 3.6), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        tests = [t for t in report["tests"] if t["channel"] == name]
        n, gamma = tests[0]["n_scored"], tests[0]["gamma"]
        if n == 0:
            ax.text(0.5, 0.5, "no scored units", ha="center", transform=ax.transAxes)
            continue
        sd = math.sqrt(n * gamma * (1 - gamma))
        x = np.arange(n + 1)
        z = (x - gamma * n) / sd
        keep = np.abs(z) <= max(5.0, max(abs(t["z"]) for t in tests) + 1)
        ax.bar(
            z[keep],
            binom.pmf(x[keep], n, gamma) * sd,
            width=1 / sd,
            color="#bbbbbb",
            label=f"null: Binomial({n}, {gamma}) (density)",
        )
        for t in tests:
            ax.axvline(
                t["z"],
                color="#c0392b" if t["implicated"] else "#2c7fb8",
                lw=2.0 if t["implicated"] else 0.6,
                alpha=1.0 if t["implicated"] else 0.5,
            )
        ax.plot([], [], color="#2c7fb8", label="observed, one line per key")
        ax.plot([], [], color="#c0392b", lw=2, label="implicated key")
        ax.set_xlabel("pooled score z"), ax.set_ylabel("density"), ax.set_title(f"{name} channel")
        ax.legend(fontsize=8)
    return _png(fig)


def qq_plot(report: dict[str, Any]) -> str:
    """Base64 PNG: -log10 p of every key against the uniform expectation, corpus and control."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.8, 4.2))
    series = [("corpus", report["tests"], "#c0392b")]
    if "control" in report:
        series.append(("control", report["control"]["tests"], "#2c7fb8"))
    top = 1.0
    for label, tests, color in series:
        p = np.sort(np.clip([t["p_value"] for t in tests], 1e-300, 1.0))
        m = len(p)
        expected = -np.log10(np.arange(1, m + 1) / (m + 1))
        ax.scatter(expected, -np.log10(p), s=10, color=color, label=label)
        top = max(top, float(expected.max()))
    ax.plot([0, top], [0, top], color="black", lw=0.8, label="uniform (null)")
    ax.set_xlabel("expected -log10 p"), ax.set_ylabel("observed -log10 p"), ax.legend(fontsize=8)
    ax.set_title("p-values of all keys")
    return _png(fig)
