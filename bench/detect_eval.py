"""Write the `## Detection (issue 3)` section of BENCHMARKS.md from a `cuirass lab detect` results.json.

    cuirass lab detect --out lab-out/detect            # the full evaluation (5,000 benign, 1,000-account campaigns)
    python bench/detect_eval.py lab-out/detect/results.json --machine "2-core sandbox" [--notes FILE]

Only that section is replaced (or appended); other sections belong to other benchmarks.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from cuirass.lab import summary

TITLE = "## Detection (issue 3)"


def section(results: dict, command: str, machine: str, notes: str) -> str:
    t = results["timings"]
    traffic = results["traffic"]
    lines = [
        TITLE,
        "",
        f"Command: `{command}` (seed {results['config']['seed']}). Machine: {machine}.",
        "",
        f"{traffic['events']:,} generated events over {results['config']['days']:g} days; calibration on benign half A "
        f"({traffic['calibration_events']:,} events, {traffic['calibration_benign_accounts']:,} accounts), test on "
        f"{traffic['test_events']:,} events ({traffic['test_accounts']:,} accounts: benign half B + every attacker). "
        f"`recall @ FPR x` sets the threshold on the test benign accounts (ROC sense); the operating point is the "
        f"threshold chosen on half A, as deployed.",
        "",
        *summary.headline(results),
        "",
        *summary.by_campaign_kind(results),
        "",
        *summary.by_account_kind(results),
        "",
        "Wall time (s): "
        + ", ".join(f"{k.removesuffix('_s')} {v:.0f}" for k, v in t.items())
        + f" (Cuirass replay: {traffic['test_events'] / max(t.get('replay_s', 0), 1e-9):,.0f} events/s).",
        "",
    ]
    if notes:
        lines += [notes.strip(), ""]
    return "\n".join(lines)


def upsert(path: Path, text: str) -> None:
    """Replace the section titled TITLE (up to the next `## `) or append it."""
    old = path.read_text() if path.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"^{re.escape(TITLE)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(old):
        new = pattern.sub(lambda _: text + "\n", old, count=1)
    else:
        new = old.rstrip() + "\n\n" + text + "\n"
    path.write_text(new)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", type=Path)
    ap.add_argument("--benchmarks", type=Path, default=Path("BENCHMARKS.md"))
    ap.add_argument("--command", default="cuirass lab detect --out lab-out/detect")
    ap.add_argument("--machine", default="2-core sandbox")
    ap.add_argument("--notes", type=Path, help="Markdown appended to the section (analysis, shortfalls).")
    args = ap.parse_args()
    results = json.loads(args.results.read_text())
    notes = args.notes.read_text() if args.notes else ""
    upsert(args.benchmarks, section(results, args.command, args.machine, notes))


if __name__ == "__main__":
    main()
