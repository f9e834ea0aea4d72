"""`audit texts`: score a suspect corpus against every channel, cohort and epoch key; correct; trace.

    for each channel, epoch e and cohort c:  X = pooled green units,  p = binom.sf(X - 1, n, gamma)
    family = every (channel, cohort, epoch) tested; Holm-adjusted p (correction.py) < alpha => implicated
    implicated (c, e) -> the accounts whose answers were keyed to c while e was in force (event log)

A control corpus (text that never saw our outputs) goes through the same tests; its randomized
p-values, independent across keys, must look Uniform(0, 1) (KS test), and nothing may be implicated.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from cuirass import __version__
from cuirass.marks.epochs import Epoch
from cuirass.prove.channels import Channel
from cuirass.prove.cohorts import members
from cuirass.prove.corpus import Corpus
from cuirass.prove.correction import METHOD, holm, ks_uniform
from cuirass.prove.keys import KeyRef, keys_for
from cuirass.storage.stores import open_event_log

QUESTION = (
    "Were these suspect outputs produced by a model trained on (or copying) answers this gateway "
    "watermarked, and through which cohorts of accounts did those answers leave?"
)


@dataclasses.dataclass(frozen=True, slots=True)
class KeyTest:
    channel: str
    cohort: str
    epoch: int
    commitment: str
    n_scored: int
    n_green: int
    n_windows: int
    gamma: float
    p_value: float
    p_randomized: float
    p_corrected: float = 1.0
    implicated: bool = False
    z_score: float | None = None  # set by channels whose null is not a Binomial count (the rank test)

    @property
    def z(self) -> float:
        """Standardised excess of green units (the score plotted against the null)."""
        if self.z_score is not None:
            return self.z_score
        if self.n_scored == 0:
            return 0.0
        return (self.n_green - self.gamma * self.n_scored) / math.sqrt(self.n_scored * self.gamma * (1 - self.gamma))

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "z": self.z}


def score_keys(
    texts: Sequence[str],
    channels: Sequence[Channel],
    cohorts: Sequence[str],
    epochs: Sequence[Epoch],
    keyring: Any,
    exclude: Sequence[str] = (),
    prompts: Sequence[str] | None = None,
) -> list[KeyTest]:
    """Uncorrected pooled tests: one per (channel, epoch, cohort); windows found in `exclude` are not scored.
    `prompts` (one per text, when known) are what the texts answer."""
    tests: list[KeyTest] = []
    for ch in channels:
        refs: list[KeyRef] = keys_for(keyring, ch.purpose, cohorts, epochs)
        for ref, s in zip(refs, ch.score(texts, [r.key for r in refs], exclude, prompts), strict=True):
            tests.append(
                KeyTest(
                    ch.name,
                    ref.cohort,
                    ref.epoch,
                    ref.commitment,
                    s.n_scored,
                    s.n_green,
                    s.n_windows,
                    s.gamma,
                    s.p_value,
                    s.p_randomized,
                    z_score=s.z,
                )
            )
    return tests


def correct(tests: Sequence[KeyTest], alpha: float) -> list[KeyTest]:
    """Holm-adjust across the whole family (all channels and keys) and mark q < alpha as implicated."""
    q = holm([t.p_value for t in tests])
    return [dataclasses.replace(t, p_corrected=qi, implicated=qi < alpha) for t, qi in zip(tests, q, strict=True)]


def _accounts(engine: sa.Engine | None, t: KeyTest, epochs: dict[int, Epoch]) -> list[dict[str, Any]]:
    if engine is None:
        return []
    e = epochs[t.epoch]
    return [m.to_dict() for m in members(open_event_log(engine), t.cohort, e.started, e.ended)]


def _run(
    corpus: Corpus,
    channels: Sequence[Channel],
    cohorts: Sequence[str],
    epochs: Sequence[Epoch],
    keyring: Any,
    alpha: float,
) -> list[KeyTest]:
    return correct(score_keys(corpus.texts, channels, cohorts, epochs, keyring, prompts=corpus.prompts), alpha)


def audit_texts(
    corpus: Corpus,
    *,
    channels: Sequence[Channel],
    keyring: Any,
    cohorts: Sequence[str],
    epochs: Sequence[Epoch],
    engine: sa.Engine | None = None,
    alpha: float = 0.01,
    control: Corpus | None = None,
    command: str = "",
) -> dict[str, Any]:
    """The full audit as plain data (the JSON report; report.py renders it as HTML)."""
    if not 0.0 < alpha < 1.0:
        raise ValueError("alpha must be in (0, 1)")
    if not channels:
        raise ValueError("no watermark channel to score with")
    by_epoch = {e.epoch: e for e in epochs}
    tests = _run(corpus, channels, cohorts, epochs, keyring, alpha)
    implicated = [{**t.to_dict(), "accounts": _accounts(engine, t, by_epoch)} for t in tests if t.implicated]
    report: dict[str, Any] = {
        "question": QUESTION,
        "cuirass_version": __version__,
        "generated_at": time.time(),
        "inputs": [corpus.describe("corpus")] + ([control.describe("control")] if control else []),
        "method": {
            "channels": {ch.name: ch.method for ch in channels},
            "correction": METHOD,
            "correction_note": (
                "Holm-Bonferroni across every (channel, cohort, epoch) key tested; controls the "
                "family-wise error rate at alpha under arbitrary dependence (union bound)."
            ),
            "alpha": alpha,
            "n_tests": len(tests),
            "cohorts": list(cohorts),
            "purposes": {ch.name: ch.purpose for ch in channels},
        },
        "epochs": [e.to_dict() for e in epochs],
        "channels": {ch.name: channel_summary([t for t in tests if t.channel == ch.name]) for ch in channels},
        "tests": [t.to_dict() for t in tests],
        "implicated": implicated,
        "rerun": command,
    }
    if control is not None:
        ctests = _run(control, channels, cohorts, epochs, keyring, alpha)
        ks = ks_uniform([t.p_randomized for t in ctests])
        report["control"] = {
            "tests": [t.to_dict() for t in ctests],
            "implicated": [t.to_dict() for t in ctests if t.implicated],
            "ks_uniform": ks.to_dict(),
            "passed": ks.uniform and not any(t.implicated for t in ctests),
        }
    report["conclusion"] = conclusion(report)
    return report


def channel_summary(tests: Sequence[KeyTest]) -> dict[str, Any]:
    """One channel's line of the report: its best key, that key's p-values, how many keys are implicated."""
    best = min(tests, key=lambda t: t.p_value) if tests else None
    return {
        "n_keys": len(tests),
        "n_scored": best.n_scored if best else 0,
        "min_p": best.p_value if best else 1.0,
        "min_p_corrected": best.p_corrected if best else 1.0,
        "best": f"{best.cohort}/epoch {best.epoch}" if best else None,
        "n_implicated": sum(t.implicated for t in tests),
    }


def conclusion(report: dict[str, Any]) -> str:
    """One paragraph in plain words."""
    alpha = report["method"]["alpha"]
    m = report["method"]["n_tests"]
    imp = report["implicated"]
    if imp:
        text = (
            f"The corpus carries our watermark. Implicated at family-wise level {alpha} over {m} keys: "
            + implicated_text(imp)
            + "."
        )
    else:
        text = (
            f"No key reaches a Holm-corrected p-value below {alpha} over {m} keys: this corpus gives no "
            "evidence of our watermark (which is not proof of absence: paraphrase removes it)."
        )
    ctl = report.get("control")
    if ctl is not None:
        ks = ctl["ks_uniform"]
        text += (
            f" Control: {len(ctl['implicated'])} keys implicated; its randomized p-values "
            f"{'look' if ks['uniform'] else 'do NOT look'} uniform (KS D = {ks['statistic']:.3f}, "
            f"p = {ks['p_value']:.3g}, n = {ks['n']}), so the self-check "
            f"{'passed' if ctl['passed'] else 'FAILED: do not rely on this audit'}."
        )
    return text


def implicated_text(implicated: list[dict[str, Any]]) -> str:
    """The implicated cohorts in one sentence part: cohort, epoch, channel, p, Holm p, account count."""
    return "; ".join(
        f"{t['cohort']} (epoch {t['epoch']}, {t['channel']} channel: p = {t['p_value']:.3g}, "
        f"Holm-corrected {t['p_corrected']:.3g}, {len(t['accounts'])} accounts)"
        for t in implicated
    )
