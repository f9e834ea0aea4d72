"""`cuirass lab detect`: generate traffic, calibrate on one benign half, replay the rest, measure.

Pipeline: traffic.jsonl (+ labels) -> calibration.jsonl (benign half A) / test.jsonl (benign half B
and every attacker) -> Cuirass `calibrate` at the target FPR on A, causal `replay` of the test
set -> the peer honeypotllm on the same two files (its threshold set on A at the same FPR) ->
metrics (ROC AUC, recall at benign FPR, campaign recall, leakage, false positives) -> results.json,
summary.md, roc.png, leakage-*.png in the output folder.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from cuirass.lab import metrics, plots, summary
from cuirass.lab.assess import Verdicts, assess
from cuirass.lab.peers import honeypot
from cuirass.lab.split import Split, split
from cuirass.lab.traffic import PRESETS, CampaignSpec, TrafficConfig, generate
from cuirass.lab.traffic.campaigns import CORE

if TYPE_CHECKING:
    from cuirass.detect.campaigns import KnownNetwork


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """The traffic to generate and how verdicts are judged."""

    traffic: TrafficConfig
    fpr: float = 0.001  # calibration target (benign-account FPR)
    report_fprs: tuple[float, ...] = (0.001, 0.01)
    catch_share: float = 0.9  # a campaign is caught when this share of its accounts is flagged


def _campaigns(size: int, naive: int) -> tuple[CampaignSpec, ...]:
    return tuple(
        dataclasses.replace(PRESETS[kind], accounts=naive if PRESETS[kind].independent else size) for kind in CORE
    )


def quick_config(seed: int = 0) -> EvalConfig:
    """Small enough for the tests: 300 benign accounts, campaigns of 30, 4 days."""
    return EvalConfig(TrafficConfig(seed=seed, benign_accounts=300, campaigns=_campaigns(30, 2), days=4.0))


def full_config(seed: int = 0) -> EvalConfig:
    """The benchmark of issue 3: 5,000 benign accounts, campaigns of 1,000 accounts, 14 days."""
    return EvalConfig(TrafficConfig(seed=seed, benign_accounts=5000, campaigns=_campaigns(1000, 5), days=14.0))


def run_cuirass(
    s: Split,
    fpr: float,
    out_dir: Path,
    progress: bool = False,
    calibration: dict[str, Any] | None = None,
    known: Sequence[KnownNetwork] = (),
) -> tuple[Verdicts, dict[str, float], list[KnownNetwork]]:
    """Calibrate Cuirass on the calibration half (unless `calibration` is given), replay the test set with the
    `known` networks of earlier windows remembered, turn the report into verdicts; also return the networks
    known at the end (for the next window).

    The calibration and the detection report are kept in out_dir (calibration.json, report.json)."""
    from cuirass.detect.calibrate import calibrate
    from cuirass.detect.replay import replay_detector
    from cuirass.events.record import read_jsonl

    timings = {}
    t0 = time.perf_counter()
    if calibration is None:
        with _bar("calibrate", s.calibration_events, progress) as tick:
            calibration = calibrate(read_jsonl(s.calibration), fpr=fpr, progress=tick)
    timings["calibrate_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    with _bar("replay", s.test_events, progress) as tick:  # the test file is in time order already
        detector, _ = replay_detector(
            read_jsonl(s.test), calibration=calibration, presorted=True, progress=tick, known=known
        )
    report = detector.report()
    timings["replay_s"] = time.perf_counter() - t0
    (out_dir / "calibration.json").write_text(json.dumps(finite(calibration), indent=2))
    (out_dir / "report.json").write_bytes(orjson.dumps(finite(report)))
    how = f"calibrate(benign half A, fpr={fpr}) -> threshold {calibration['threshold']:.4f}"
    verdicts = Verdicts("cuirass", {}, {}, {}, how)
    for row in report["accounts"]:
        verdicts.scores[row["account"]] = float(row["score"])
        verdicts.flagged_at[row["account"]] = row["first_flagged_ts"] if row["flagged"] else None
        verdicts.reasons[row["account"]] = list(row.get("reasons") or [])
        verdicts.campaign[row["account"]] = row.get("campaign")
    for c in report.get("campaigns", []):
        signature = [f"signature {key}" for key in c.get("signature", [])[:8]]
        verdicts.campaign_reasons[c["id"]] = [*c.get("reasons", []), *signature]
    return verdicts, timings, detector.known_networks()


@contextlib.contextmanager
def _bar(desc: str, total: int, enabled: bool) -> Iterator[Callable[[int], None] | None]:
    """A tqdm bar on stderr whose `update` is handed to the detector as its progress callback."""
    if not enabled:
        yield None
        return
    from tqdm import tqdm

    with tqdm(desc=desc, total=total, unit="ev", unit_scale=True, mininterval=1.0) as bar:

        def tick(n: int) -> None:
            bar.update(n)

        yield tick


def run_honeypot(s: Split, python: Path, fpr: float, out_dir: Path) -> tuple[Verdicts, Verdicts, dict[str, float]]:
    """The peer on both halves: (threshold set on half A at `fpr`, its own default threshold 0.75)."""
    t0 = time.perf_counter()
    calib = honeypot.score(python, s.calibration_feed, out_dir / "honeypot.calibration.json")
    test = honeypot.score(python, s.test_feed, out_dir / "honeypot.test.json")
    elapsed = time.perf_counter() - t0
    threshold = metrics.threshold_at_fpr(
        [calib["accounts"].get(a, {}).get("peak", 0.0) for a in s.calibration_accounts], fpr
    )
    tuned = Verdicts("honeypotllm", {}, {}, {}, f"peak score > {threshold:.4f} (benign half A at fpr={fpr})")
    native = Verdicts("honeypotllm@0.75", {}, {}, {}, f"peak score > {calib['threshold']} (its default)")
    for account, info in test["accounts"].items():
        for v, thr in ((tuned, threshold), (native, calib["threshold"])):
            v.scores[account] = info["peak"]
            v.flagged_at[account] = honeypot.first_crossing(info["steps"], thr)
            v.reasons[account] = [f"peak suspicion {info['peak']:.2f}"]
    return tuned, native, {"honeypot_s": elapsed}


def run(
    config: EvalConfig, out_dir: str | Path, honeypot_python: str | None = None, progress: bool = True
) -> dict[str, Any]:
    """The whole evaluation; writes results.json, summary.md and plots to out_dir; returns the results."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    def say(msg: str) -> None:
        if progress:
            print(msg, file=sys.stderr, flush=True)

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    say(
        f"generating traffic ({config.traffic.benign_accounts} benign accounts, "
        f"{len(config.traffic.campaigns)} campaign specs) ..."
    )
    labels = generate(config.traffic, out / "traffic.jsonl", progress=progress)
    timings["generate_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    s = split(out / "traffic.jsonl", labels, out, config.traffic.seed, progress=progress)
    timings["split_s"] = time.perf_counter() - t0
    say(f"calibrating on {s.calibration_events} events, replaying {s.test_events} test events ...")
    ours, cuirass_timing, _ = run_cuirass(s, config.fpr, out, progress)
    timings.update(cuirass_timing)
    verdicts = [ours]
    python = honeypot.python_path(honeypot_python)
    peer_note = None
    if python is None:
        peer_note = (
            "honeypotllm not installed (python -m venv .venv-peers/honeypotllm && "
            ".venv-peers/honeypotllm/bin/pip install honeypotllm greenlet)"
        )
        say(f"skipping peer: {peer_note}")
    else:
        say("scoring the same traffic with honeypotllm ...")
        tuned, native, peer_timing = run_honeypot(s, python, config.fpr, out)
        timings.update(peer_timing)
        verdicts += [tuned, native]
    results: dict[str, Any] = {
        "config": {**config.traffic.to_dict(), "fpr": config.fpr, "catch_share": config.catch_share},
        "traffic": {
            "events": labels["events"],
            "calibration_events": s.calibration_events,
            "test_events": s.test_events,
            "calibration_benign_accounts": len(s.calibration_accounts),
            "test_accounts": len(s.test_times),
        },
        "timings": {k: round(v, 2) for k, v in timings.items()},
        "peer_note": peer_note,
        "detectors": {
            v.name: assess(v, labels, s.test_times, config.report_fprs, config.catch_share) for v in verdicts
        },
    }
    (out / "results.json").write_text(json.dumps(finite(results), indent=2))
    plots.roc(verdicts[:2], labels, s.test_times, out / "roc.png")
    for v in verdicts[:2]:
        plots.leakage(v, labels, s.test_times, labels["window"], out / f"leakage-{v.name}.png")
    (out / "summary.md").write_text(summary.markdown(results))
    return results


def finite(value: Any) -> Any:
    """JSON has no NaN/inf: write them as null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    if isinstance(value, np.generic):
        return finite(value.item())
    return value
