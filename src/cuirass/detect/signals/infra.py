"""Infrastructure: networks, client software and payment instruments behind an account.

Mostly a source of linking features for campaign detection: accounts of one reseller share a
rented address block, a client build, a card. On its own an account gets evidence only for
hopping across many networks (rotating proxies). Shared infrastructure is weak evidence by
itself: a company's staff share a NAT and a card, and everyone uses the same SDKs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from cuirass.detect.digest import Digest
from cuirass.detect.signals.base import Context, Link, Signal, register

MAX_NETWORKS = 32
LINKED_NETWORKS = 3


class InfraState:
    __slots__ = ("networks", "user_agent", "payment", "overflow")

    def __init__(self) -> None:
        self.networks: dict[str, int] = {}
        self.user_agent: str | None = None
        self.payment: str | None = None
        self.overflow = False


class InfraSignal(Signal):
    """+0.25 per distinct /24 (or /64) beyond five, up to +1.5."""

    name = "infra"
    summary_size = 0

    def new_state(self) -> InfraState:
        return InfraState()

    def observe(self, state: InfraState, d: Digest, decay: float, ctx: Context) -> float:
        if d.ip_net is not None:
            nets = state.networks
            if d.ip_net in nets or len(nets) < MAX_NETWORKS:
                nets[d.ip_net] = nets.get(d.ip_net, 0) + 1
            else:
                state.overflow = True
        if d.user_agent is not None:
            state.user_agent = d.user_agent
        if d.payment is not None:
            state.payment = d.payment
        return self._evidence(len(state.networks))

    @staticmethod
    def _evidence(networks: int) -> float:
        return min(1.5, 0.25 * (networks - 5)) if networks > 5 else 0.0

    def explain(self, state: InfraState) -> str:
        more = "+" if state.overflow else ""
        return f"requests from {len(state.networks)}{more} different networks"

    def summary(self, state: InfraState) -> Sequence[float]:
        return ()

    def links(self, state: InfraState) -> Iterable[Link]:
        nets = state.networks
        top = sorted(nets, key=nets.__getitem__, reverse=True)[:LINKED_NETWORKS]
        for net in top:
            yield ("net", net)
        if state.user_agent is not None and top:  # a user agent alone links half the world; with a network, not
            yield ("uanet", f"{state.user_agent}|{top[0]}")
        if state.payment is not None:
            yield ("pay", state.payment)


register(InfraSignal)
