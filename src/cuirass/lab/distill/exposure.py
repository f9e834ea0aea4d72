"""What the gateway did, read back from its own event log and verdict store after a harvest.

- served before detection: the share of the campaign's harvest requests that went out untouched
  (event `action` = `pass`), i.e. what the attacker got before the policy started to act on it;
- benign flagged: benign accounts the detector flagged, and benign requests that got any defense;
- cohorts: the cohorts whose keys marked the campaign's answers (what the audit should find).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def _rows(db: Path, query: str) -> list[sqlite3.Row]:
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        try:
            return list(conn.execute(query))
        except sqlite3.OperationalError:  # the table was never created (e.g. detection off)
            return []


def exposure(
    db: Path, campaign_accounts: Iterable[str], harvest_prompts: Iterable[str], benign_accounts: Iterable[str]
) -> dict[str, Any]:
    """Served-before-detection share of the harvest, actions taken, benign false positives."""
    campaign, benign, prompts = set(campaign_accounts), set(benign_accounts), set(harvest_prompts)
    actions: dict[str, int] = {}
    served = harvested = benign_defended = benign_requests = 0
    cohorts: set[str] = set()
    account_cohort: dict[str, str] = {}
    for r in _rows(db, "SELECT account, action, messages, cohort FROM events ORDER BY seq"):
        if r["account"] in benign:
            benign_requests += 1
            benign_defended += (r["action"] or "pass") != "pass"
            continue
        if r["account"] not in campaign:
            continue
        messages = json.loads(r["messages"]) if r["messages"] else []
        if not messages or messages[-1].get("content") not in prompts:
            continue  # a stealthy account's benign-looking request
        harvested += 1
        if r["cohort"]:
            cohorts.add(r["cohort"])
            account_cohort.setdefault(r["account"], r["cohort"])
        action = r["action"] or "pass"
        actions[action] = actions.get(action, 0) + 1
        served += action == "pass"
    verdicts = {r["account"]: r for r in _rows(db, "SELECT account, flagged, campaign FROM verdicts")}
    flagged_campaign = sum(bool(verdicts[a]["flagged"]) for a in campaign if a in verdicts)
    flagged_benign = sum(bool(verdicts[a]["flagged"]) for a in benign if a in verdicts)
    return {
        "harvest_requests": harvested,
        "served_before_detection": served / harvested if harvested else None,
        "actions": actions,
        "cohorts": sorted(cohorts),
        "account_cohort": account_cohort,
        "campaign_accounts": len(campaign),
        "campaign_flagged": flagged_campaign,
        "benign_accounts": len(benign),
        "benign_flagged": flagged_benign,
        "benign_requests": benign_requests,
        "benign_defended": benign_defended,
    }
