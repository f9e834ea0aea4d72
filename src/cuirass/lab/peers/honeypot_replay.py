"""Replay a compact event feed through honeypotllm's SuspicionScorer in event time (peer venv only).

Run with the peer's interpreter, never imported by Cuirass (stdlib + honeypotllm only):
    python honeypot_replay.py FEED.jsonl OUT.json
FEED lines are [ts, account, prompt, input_tokens] in time order. honeypotllm reads time.time()
(also as a dataclass default), so the clock is replaced *before* it is imported and set to each
event's ts. Output per account: peak score, final score, request count, and the steps where the
running peak rose ([ts, peak]), so a caller can find when any threshold was first crossed.
"""

import json
import sys
import time
from typing import Any

_now = [0.0]
time.time = lambda: _now[0]  # must precede the import below

from honeypotllm.config import ScoringConfig  # noqa: E402
from honeypotllm.scoring import SuspicionScorer  # noqa: E402

THRESHOLD = 0.75  # the peer's documented default


def main(feed: str, out: str) -> None:
    scorer = SuspicionScorer(ScoringConfig(), suspicion_threshold=THRESHOLD)
    result: dict[str, dict[str, Any]] = {}
    with open(feed, encoding="utf-8") as fh:
        for line in fh:
            ts, account, prompt, input_tokens = json.loads(line)
            _now[0] = ts
            score = scorer.score_request(account, prompt=prompt, input_tokens=input_tokens).score_after
            info = result.get(account)
            if info is None:
                info = result[account] = {"peak": 0.0, "final": 0.0, "requests": 0, "steps": []}
            info["requests"] += 1
            info["final"] = score
            if score > info["peak"]:
                info["peak"] = score
                info["steps"].append([ts, round(score, 5)])
    with open(out, "w", encoding="utf-8") as fh:
        json.dump({"threshold": THRESHOLD, "accounts": result}, fh)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
