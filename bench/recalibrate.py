"""How much of a lab run's missed detection is the calibration population (issue 19): the test half judged
again at a threshold calibrated on benign half A *without* the hard negatives (corporate teams behind one
NAT, app backends, power users: `HARD_NEGATIVE_KINDS`).

    .venv/bin/python bench/recalibrate.py DIR [DIR ...]    # DIR: a `cuirass lab detect --out DIR` folder

`cuirass lab detect` calibrates on all of half A, so the hardest legitimate customer there (a tutoring app,
a corporate employee) sets the threshold for everyone. This replays the same split (written again under
DIR/recalibrated/, deterministic), calibrates at the run's FPR on half A's ordinary accounts only, replays
the test half causally at that threshold (as `lab detect` does) and prints, per kind of account, how many
are flagged, with each campaign's recall and leakage. An operator would get the same effect by calibrating
on self-serve accounts and treating the organisations it has contracts with apart (`policy.allowlist`
takes "org:NAME"); the hard negatives' row says what that would leave flagged among them.
"""

from __future__ import annotations

import argparse
import collections
import json
from pathlib import Path
from typing import Any


def recalibrate(folder: Path) -> dict[str, Any]:
    from cuirass.detect.calibrate import calibrate
    from cuirass.events.record import read_jsonl
    from cuirass.lab import detect_eval
    from cuirass.lab.assess import assess
    from cuirass.lab.split import split
    from cuirass.lab.traffic.benign import HARD_NEGATIVE_KINDS

    results = json.loads((folder / "results.json").read_text())
    labels = json.loads((folder / "traffic.labels.json").read_text())
    info = labels["accounts"]
    fpr = results["config"]["fpr"]
    out = folder / "recalibrated"
    out.mkdir(exist_ok=True)
    s = split(folder / "traffic.jsonl", labels, out, results["config"]["seed"], progress=False)
    ordinary = (e for e in read_jsonl(s.calibration) if info[e.account]["kind"] not in HARD_NEGATIVE_KINDS)
    calibration = calibrate(ordinary, fpr=fpr)
    verdicts, _, _ = detect_eval.run_cuirass(s, fpr, out, calibration=calibration)
    assessed = assess(verdicts, labels, s.test_times, (fpr,), results["config"]["catch_share"])
    flagged, accounts = collections.Counter(), collections.Counter()
    for account in s.test_times:
        kind = info[account]["kind"]
        accounts[kind] += 1
        flagged[kind] += verdicts.flagged_at.get(account) is not None
    return {
        "threshold": {
            "all of half A": json.loads((folder / "calibration.json").read_text())["threshold"],
            "ordinary accounts of half A": calibration["threshold"],
        },
        "flagged": {kind: f"{flagged[kind]}/{accounts[kind]}" for kind in sorted(accounts)},
        "campaigns": {c["id"]: {"recall": c["flagged_share"], "leakage": c["leakage"]} for c in assessed["campaigns"]},
        "hard_negatives": assessed["hard_negatives"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", type=Path, help="`cuirass lab detect --out` folders")
    for folder in parser.parse_args().folders:
        print(folder, json.dumps(recalibrate(folder), indent=2))


if __name__ == "__main__":
    main()
