"""Who was in which cohort, when: read back from the event log, and recorded in the audit log.

A regular cohort is a keyed hash of the account (`Keyring.cohort_of`), so it is derivable; a suspect is
moved to a honeypot cohort (`hNNN`) by the policy. Every event whose answer was keyed (watermark,
canary, ...) carries its `cohort`, so the event log itself says which accounts received text under
which cohort key in which time span; `members` answers that, `moves` lists the changes of cohort, and
`checkpoint` writes the moves and the defenses applied since the last checkpoint to the audit log.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Any

from cuirass.audit_log import AuditLog
from cuirass.events.log import EventLog


def cohort_names(n_cohorts: int, n_honeypot: int) -> list[str]:
    """Every cohort a key can belong to: regular c000.. then honeypot h000.. (as in responder.py)."""
    return [f"c{i:03d}" for i in range(n_cohorts)] + [f"h{i:03d}" for i in range(n_honeypot)]


@dataclasses.dataclass(frozen=True, slots=True)
class Member:
    account: str
    cohort: str
    first_ts: float
    last_ts: float
    n_events: int  # keyed answers this account received under the cohort in the span

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def members(
    events: EventLog, cohort: str | None = None, start: float | None = None, end: float | None = None
) -> list[Member]:
    """Accounts that received answers keyed to `cohort` (all cohorts when None) with start <= ts < end."""
    return [Member(*m) for m in events.cohort_members(cohort, start, end)]


def moves(events: EventLog, after_seq: int = 0) -> list[dict[str, Any]]:
    """Changes of cohort in event order: an account keyed to one cohort, then to another.

    A first keyed event in a honeypot cohort counts as a move (from the account's derivable regular
    cohort); a first event in a regular cohort is an assignment and is not listed. `after_seq` keeps
    moves after that event.
    """
    return events.cohort_moves(after_seq)


def checkpoint(events: EventLog, log: AuditLog) -> dict[str, Any]:
    """Append the cohort moves and a count of defenses applied since the last checkpoint (batch job).

    The record also carries the event log's last seq, so each checkpoint covers a disjoint range.
    """
    last = log.last("checkpoint")
    after = int(last["data"]["through_seq"]) if last else 0
    through, rows = events.applied_actions(after)
    applied: Counter[str] = Counter()
    for cohort, actions in rows:
        for a in actions or []:
            applied[f"{a}@{cohort or '-'}"] += 1
    found = [m for m in moves(events, after) if m["seq"] <= through]
    for m in found:
        log.append("cohort_move", m)
    data = {
        "after_seq": after,
        "through_seq": int(through),
        "events": len(rows),
        "moves": len(found),
        "defenses_applied": dict(sorted(applied.items())),
    }
    log.append("checkpoint", data)
    return data
