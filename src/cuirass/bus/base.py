"""What a bus is to its callers: a sink the event writer appends to (`EventSink`), and the one error it raises."""

from __future__ import annotations

from cuirass.events.log import LogUnavailable


class BusUnavailable(LogUnavailable):
    """The bus cannot be reached now (down, restarting, no acknowledgement in time): retry as is."""
