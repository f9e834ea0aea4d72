"""The event log as its callers see it: an interface, with the SQL table (`events.store`) one implementation.

Callers hold an `EventLog` and never its storage: the writer appends batches, the detection service
tails by cursor, export and the audits read. Another backend (a message bus, for the fleet) is one
class implementing this Protocol, registered in `EVENT_LOGS` under the name the configuration gives;
`cuirass.storage.stores.open_event_log` builds the one that is named.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from cuirass.registry import Registry

Row = dict[str, Any]  # one stored event: the event record plus operational fields (`events.store.to_row`)


@dataclasses.dataclass(frozen=True, slots=True)
class Tailed:
    """One event read by `EventLog.tail`: its position, who and which request, and its row.

    The row is decoded on demand (`row()`, which may raise), so that a caller can set one undecodable
    event aside alone instead of failing the whole batch at the same cursor again and again.
    """

    seq: int
    account: str
    request_id: str
    decode: Callable[[], Row]

    def row(self) -> Row:
        return self.decode()


class LogUnavailable(Exception):
    """The log cannot be reached now (a bus down, say): the writer keeps the batch and retries it as is."""


class EventSink(Protocol):
    """Where the event writer puts events: the SQL log on one machine, the bus in a fleet (`bus.jetstream`)."""

    def append(self, rows: list[Row], *, skip_present: bool = False) -> int:
        """Store `rows` atomically (all or none); returns how many were stored. With `skip_present`,
        rows whose request_id the log already holds are skipped: what makes a spool replay idempotent.
        Raises `LogUnavailable` (or a SQL availability error) when it cannot now."""
        ...

    def missing(self, rows: list[Row]) -> list[Row]:
        """The rows whose request_id the log does not hold yet."""
        ...


class EventLog(EventSink, Protocol):
    """An append-only log of events, each at a position (`seq`, increasing in write order)."""

    # -- read: export, the detection service -----------------------------------------------------
    def read(self, since: float | None = None) -> Iterator[Row]:
        """Every event (with ts >= since when given) in write order, streamed."""
        ...

    def count(self) -> int: ...

    def start(self, since: float) -> int:
        """The cursor just before the first event with ts >= since (after the newest one if none is)."""
        ...

    def tail(self, after: int, limit: int) -> tuple[list[Tailed], int]:
        """Up to `limit` events after cursor `after`, in order, and the cursor after the last of them."""
        ...

    # -- read: the audits (prove/) ---------------------------------------------------------------
    def cohort_members(
        self, cohort: str | None, start: float | None, end: float | None
    ) -> list[tuple[str, str, float, float, int]]:
        """(account, cohort, first ts, last ts, events) per account and cohort of the keyed events with
        start <= ts < end (each bound when given), ordered by cohort then account."""
        ...

    def cohort_moves(self, after: int = 0) -> list[dict[str, Any]]:
        """Changes of cohort after cursor `after`, in event order (see `prove.cohorts.moves`)."""
        ...

    def applied_actions(self, after: int) -> tuple[int, list[tuple[str | None, Any]]]:
        """The newest cursor (`after` on an empty log) and the (cohort, actions) of the events after
        `after` up to it, read together."""
        ...

    def keyed_messages(self, limit: int) -> list[Any]:
        """The messages of the newest `limit` keyed events that did not fail (status < 400 or none)."""
        ...

    # -- read: the operator console (gateway/admin.py) --------------------------------------------
    def of_accounts(self, accounts: list[str], limit: int) -> list[Row]:
        """The newest `limit` events of these accounts, oldest first."""
        ...

    def activity(self, since: float) -> Iterator[tuple[float, str | None, Any, int | None]]:
        """(ts, action, shadowed, status) of every event with ts >= since, streamed."""
        ...


EVENT_LOGS: Registry[type[Any]] = Registry("event log")  # name (configuration) -> class taking the engine
