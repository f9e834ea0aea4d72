"""Where one process's detection time goes: CPU seconds to read, digest, score and run the campaign jobs.

The per-event cost of issue 19 ("at or below today's") and the scoring process's bound of issue 18 are both
sums of these stages. Replays the first N events of the benchmark log (bench/detect_replay.py generates it
into --cache once) in this process, stage by stage: read every event (`events.formats.read`), digest each
(`detect.digest.digest`), then feed the digests to a detector in time order (`detect.replay.detect`,
`--presorted`), with the campaign jobs timed apart. Prints the sha256 of the report, so that a change meant
to be exact can be checked to leave every verdict as it was.

    .venv/bin/python bench/detect_stages.py --events 300000
    .venv/bin/python bench/detect_stages.py --events 1000000 --json
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import itertools
import json
import time
from pathlib import Path
from typing import Any

from detect_replay import ensure_traffic


def measure(path: Path, n: int) -> dict[str, Any]:
    from cuirass.detect.digest import digest
    from cuirass.detect.engine import Detector
    from cuirass.detect.replay import detect, report_of
    from cuirass.events.formats import Reading, read

    clock = time.process_time
    gc.disable()  # as `detect run` does while it replays (detect.replay._no_cyclic_gc)
    start = clock()
    events = list(itertools.islice(read(path, Reading("cuirass")), n))
    read_s = clock() - start
    start = clock()
    digests = [digest(e) for e in events]
    digest_s = clock() - start
    del events
    jobs = [0.0]
    run_campaigns = Detector.run_campaigns

    def timed(self: Detector, now_ts: float) -> Any:
        began = clock()
        try:
            return run_campaigns(self, now_ts)
        finally:
            jobs[0] += clock() - began

    Detector.run_campaigns = timed  # type: ignore[method-assign]
    try:
        start = clock()
        detector = detect(iter(digests), presorted=True)
        detect_s = clock() - start
    finally:
        Detector.run_campaigns = run_campaigns  # type: ignore[method-assign]
    report = report_of(detector)
    gc.enable()
    blob = json.dumps(report, sort_keys=True, default=str).encode()
    return {
        "events": len(digests),
        "read_s": read_s,
        "digest_s": digest_s,
        "score_s": detect_s - jobs[0],
        "campaign_jobs_s": jobs[0],
        "total_s": read_s + digest_s + detect_s,
        "jobs": detector.campaign_runs,
        "flagged": sum(1 for a in report["accounts"] if a.get("flagged")),
        "report_sha256": hashlib.sha256(blob).hexdigest(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=300_000, help="replay the first N events of the log")
    parser.add_argument("--cache", type=Path, default=Path("bench/results/detect-cache"))
    parser.add_argument("--json", action="store_true", help="print JSON lines instead of a table")
    args = parser.parse_args()
    path = ensure_traffic(args.cache)
    if not args.json:
        print("| events | read | digest | score | campaign jobs (count) | total CPU-s | flagged | report sha256 |")
        print("|---|---|---|---|---|---|---|---|")
    m = measure(path, args.events)
    if args.json:
        print(json.dumps(m))
    else:
        print(
            f"| {m['events']:,} | {m['read_s']:.1f} | {m['digest_s']:.1f} | {m['score_s']:.1f} | "
            f"{m['campaign_jobs_s']:.1f} ({m['jobs']}) | {m['total_s']:.1f} | {m['flagged']:,} | "
            f"{m['report_sha256'][:12]} |"
        )


if __name__ == "__main__":
    main()
