"""Where a network's judgement falls short (issue 19): the campaign job's communities on a lab run, and
candidate population-level statistics measured on them before any of them becomes evidence.

    .venv/bin/python bench/communities.py DIR [DIR ...]    # DIR: a `cuirass lab detect --out DIR` folder
    .venv/bin/python bench/communities.py DIR --linked 48  # phrasing links per account (phrasing.LINKED)

Each folder's test half is replayed causally at its calibrated threshold (as `lab detect` does); the
communities of the last campaign job are listed with their make-up (from the lab's labels), the log-odds
the job gives them against the bar a community must clear to lift its members (threshold + LIFT_MARGIN),
how many members are tied to it, and three population statistics:

- MMD ratio: a two-sample test of the members' per-request signal rates against the window's population
  (the linear-kernel MMD of Gretton et al. 2012, "A kernel two-sample test", JMLR 13; the extraction
  detector of arXiv 2606.05725 applies an MMD test to query distributions). With columns standardised
  over the N accounts of the window, a random cohort of m accounts has E||mean_C - mean_P||^2 =
  (W / m) (N - m) / (N - 1) for W non-constant columns; the ratio is the observed distance over that.
- specific phrasing: the share of members holding the most held template or near-duplicate phrasing of
  the community among those whose holders are >= 90% members (a network's wording, not a popular one).
- payers on one script: the most distinct payment cards among the members holding one content feature
  (template, phrasing or system prompt) whose holders are >= 90% members, over those holders. A company's staff
  share their internal tool's prompt and pay with one card (near 0); a network of sock puppets shares its
  script across as many cards as accounts (near 1). Accounts without a card count as a card each.

A statistic carries signal when it separates the communities that are mostly campaign accounts from
the ones that are mostly people; the summary line per statistic gives both ranges.
"""

from __future__ import annotations

import argparse
import collections
import json
import time
from pathlib import Path

import numpy as np

from cuirass.detect import campaigns as C
from cuirass.detect.engine import Detector
from cuirass.detect.replay import digests, run
from cuirass.detect.signals import phrasing
from cuirass.events.record import read_jsonl

SPECIFIC = 0.9


def mmd_ratio(rates: np.ndarray, group: np.ndarray) -> float:
    """Observed squared distance of the group's mean from the population's (standardised), over a random cohort's."""
    sd = rates.std(axis=0)
    keep = sd > 1e-9
    z = (rates[:, keep] - rates[:, keep].mean(axis=0)) / sd[keep]
    n, m = len(z), len(group)
    expected = z.shape[1] / m * (n - m) / max(n - 1, 1)
    return float((z[group].mean(axis=0) ** 2).sum() / expected) if expected > 0 else 0.0


def specific_share(fids: np.ndarray, counts: np.ndarray, df: np.ndarray, index: C.FeatureIndex, m: int) -> float:
    best = 0
    for f, c in zip(fids.tolist(), counts.tolist()):
        if index.kind(f) in C.PHRASING_KINDS and c >= SPECIFIC * df[f]:
            best = max(best, c)
    return best / m


def payers_share(
    pairs: np.ndarray, fids: np.ndarray, counts: np.ndarray, df: np.ndarray, index: C.FeatureIndex, card: np.ndarray
) -> tuple[float, int]:
    """(distinct cards over holders, holders) of the private content feature whose holders pay with most cards."""
    best, holders = 0.0, 0
    for f, c in zip(fids.tolist(), counts.tolist()):
        if c < C.LIFT_MIN_SIZE or index.kind(f) not in ("tpl", "near", "sys") or c < SPECIFIC * df[f]:
            continue
        owners = pairs[pairs[:, 1] == f, 0]
        share = len(np.unique(card[owners])) / len(owners)
        if share > best or (share == best and c > holders):
            best, holders = share, c
    return best, holders


def analyse(folder: Path) -> list[dict[str, object]]:
    labels = json.loads((folder / "traffic.labels.json").read_text())["accounts"]
    detector = Detector(json.loads((folder / "calibration.json").read_text()))
    t0 = time.process_time()
    run(detector, digests(read_jsonl(folder / "test.jsonl")))
    cpu = time.process_time() - t0
    flagged = collections.Counter(labels[a.account]["kind"] for a in detector.verdicts() if a.flagged)
    print(f"{folder}: replay {cpu:.0f} s CPU, flagged by kind {dict(flagged) or 'none'}")
    rows = detector.campaign_snapshot(detector.last_ts or 0.0)
    index, signals = detector._features, detector.scorer.signals
    graph = C._Graph(rows, index, detector.seed, detector._assignment)
    offsets = C.offsets_of(signals)
    summaries = np.stack([r.summary for r in rows])
    volumes = np.maximum(np.array([r.volume for r in rows]), 1e-9)
    facts, traits = C.columns(signals, "per_account"), C.columns(signals, "rare_trait")
    rates = summaries / volumes[:, None]
    rates[:, facts] = summaries[:, facts]
    own = np.array([r.own for r in rows])
    card = np.arange(-len(rows), 0)  # the card's feature id, or a number of the row's own when it has none
    for i, r in enumerate(rows):
        for f in r.features.tolist():
            if index.kind(f) == "pay":
                card[i] = f
    bar = detector.threshold_logit + C.LIFT_MARGIN
    out = []
    print(f"  bar (threshold + margin) {bar:+.2f} log-odds; {len(rows)} accounts in the window")
    print(
        "  | members | make-up | attack share | log-odds | tied | MMD ratio | specific phrasing | payers on a script |"
    )
    for group in graph.groups():
        if len(group) < C.LIFT_MIN_SIZE:
            continue
        kinds = collections.Counter(labels[rows[i].account]["kind"] for i in group.tolist())
        attack = sum(labels[rows[i].account]["label"] != "benign" for i in group.tolist()) / len(group)
        fids, counts, pairs = graph.shared(int(graph.membership[group[0]]))
        pooled = C.pool(summaries[group], volumes[group], facts, traits)
        logit, _ = C.judge(group, fids, counts, index, signals, offsets, pooled, own[group])
        tied = len(C.tied(fids, counts, pairs, graph, index, len(group)))
        row = {
            "members": len(group),
            "attack": attack,
            "logit": logit,
            "mmd": mmd_ratio(rates, group),
            "specific": specific_share(fids, counts, graph.df, index, len(group)),
        }
        row["payers"], holders = payers_share(pairs, fids, counts, graph.df, index, card)
        out.append(row)
        makeup = ", ".join(f"{k} {v}" for k, v in kinds.most_common(3))
        print(
            f"  | {len(group)} | {makeup} | {attack:.0%} | {logit:+.2f} | {tied} | {row['mmd']:.1f} "
            f"| {row['specific']:.0%} | {row['payers']:.2f} of {holders} |"
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--linked", type=int, default=None, help="phrasing links offered per account")
    args = parser.parse_args()
    if args.linked is not None:
        phrasing.LINKED = args.linked
    found = [row for folder in args.folders for row in analyse(folder)]
    nets = [r for r in found if float(r["attack"]) >= 0.5]  # type: ignore[arg-type]
    people = [r for r in found if float(r["attack"]) < 0.5]  # type: ignore[arg-type]
    for key in ("logit", "mmd", "specific", "payers"):
        a = [float(r[key]) for r in nets]  # type: ignore[arg-type]
        b = [float(r[key]) for r in people]  # type: ignore[arg-type]
        span = lambda v: f"{min(v):.2f}..{max(v):.2f}" if v else "-"  # noqa: E731
        print(f"{key}: networks ({len(a)}) {span(a)}; people ({len(b)}) {span(b)}")


if __name__ == "__main__":
    main()
