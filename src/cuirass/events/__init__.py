"""The event log: one record per request, written off the hot path (docs/architecture.md, "Contracts")."""

from cuirass.events.record import ACTIONS, ANONYMOUS, Event, read_jsonl, write_jsonl

__all__ = ["ACTIONS", "ANONYMOUS", "Event", "read_jsonl", "write_jsonl"]
