"""The verdicts as the detection service and the gateway see them: an interface, with SQL one implementation.

The detection service puts verdicts; every gateway worker keeps the ones that matter to its policy in a
`VerdictCache`, fed by `poll`. The SQL `VerdictStore` (`verdicts.store`) is the implementation today;
another (a shared cache, pushed over Redis or NATS pub/sub, for the fleet) is one class implementing this
Protocol, registered in `VERDICT_SOURCES` under the name the configuration gives
(`cuirass.storage.stores.open_verdict_source` builds it).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from cuirass.registry import Registry
from cuirass.verdicts.model import AccountVerdict


class VerdictSource(Protocol):
    # -- written by the detection service ------------------------------------------------------------
    def put_auto(self, rows: Iterable[dict[str, Any]]) -> int:
        """Replace the automatic verdicts of these accounts (keys: account, score, flagged, reasons,
        campaign, first_flagged_ts); returns how many."""
        ...

    def put_campaigns(self, campaigns: list[dict[str, Any]]) -> None:
        """Replace the campaign list (keys: id, accounts, score, reasons)."""
        ...

    # -- read ----------------------------------------------------------------------------------------
    def get(self, account: str) -> AccountVerdict:
        """The effective verdict of one account (automatic, or the operator's override)."""
        ...

    def poll(self, floor: float) -> dict[str, AccountVerdict]:
        """The effective verdicts that matter to the policy: score >= floor, flagged, or overridden.

        The subscription point. The SQL store answers it with a query, and `VerdictCache.refresh` calls
        it every `detection.refresh_s`; a pushed implementation (Redis or NATS pub/sub) keeps this map
        current from its subscription and returns it without a round trip.
        """
        ...


VERDICT_SOURCES: Registry[type[Any]] = Registry("verdict source")  # name (configuration) -> class taking the engine
