"""Online account scoring: bounded streaming state per account, O(1) work per request.

An account's own log-odds is PRIOR + the sum of its signals' censored evidence, correlated
signals censored as a group (evidence.py: the formula and why). Evidence lives in decayed
statistics: each request multiplies an account's older weight by exp(-dt / tau), dt being the
event time since its previous request, so an account that stopped harvesting long ago drifts
back to the prior. A campaign the account belongs to can lift it towards the campaign's
log-odds, by at most MAX_LIFT (campaigns.py); score = sigmoid(lifted log-odds).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

from mypy_extensions import mypyc_attr

from cuirass.detect.digest import Digest
from cuirass.detect.evidence import MAX_LIFT, PRIOR, Combiner, sigmoid
from cuirass.detect.signals import Context, Link, Signal

DEFAULT_TAU_S = 3 * 86400.0  # evidence half-life is tau * ln 2, about two days
REASON_MIN = 0.25  # evidence (log-odds) below which a signal is not worth a reason


@mypyc_attr(serializable=True)  # checkpoints restore it without calling __init__ (detect.checkpoint)
class AccountState:
    """Everything kept about one account: per-signal state and evidence, plus verdict bookkeeping."""

    __slots__ = (
        "account",
        "states",
        "evidence",
        "own",
        "n",
        "volume",
        "first_ts",
        "last_ts",
        "dirty",
        "campaign",
        "campaign_logit",
        "campaign_reason",
        "matches",
        "peak",
        "peak_ts",
        "first_flagged_ts",
        "flag_reasons",
    )

    def __init__(self, account: str, signals: Sequence[Signal], ts: float) -> None:
        self.account = account
        self.states = [s.new_state() for s in signals]
        self.evidence = [0.0] * len(signals)
        self.own = PRIOR  # the account's own log-odds
        self.n = 0  # requests seen (not decayed)
        self.volume = 0.0  # requests seen, decayed
        self.first_ts = ts
        self.last_ts = ts
        self.dirty = True  # changed since the last campaign job
        self.campaign: str | None = None
        self.campaign_logit = -math.inf  # log-odds its campaign lends it
        self.campaign_reason: str | None = None
        self.matches: dict[str, set[str]] | None = None  # campaign id -> signature features matched
        self.peak = 0.0  # highest score so far
        self.peak_ts: float | None = None
        self.first_flagged_ts: float | None = None
        self.flag_reasons: list[str] | None = None  # reasons when first flagged

    @property
    def logit(self) -> float:
        """Own log-odds, lifted towards the campaign's by at most MAX_LIFT."""
        if self.campaign_logit <= self.own:
            return self.own
        return min(self.campaign_logit, self.own + MAX_LIFT)

    @property
    def score(self) -> float:
        return sigmoid(self.logit)


class Scorer:
    """Per-account streaming state for a fixed list of signals."""

    def __init__(self, signals: Sequence[Signal], tau_s: float = DEFAULT_TAU_S) -> None:
        if tau_s <= 0:
            raise ValueError("tau_s must be positive")
        self.signals = list(signals)
        self._observers = [s.observe for s in self.signals]
        self.combine = Combiner([s.group for s in self.signals])
        self.tau_s = tau_s
        self.context = Context()
        self.accounts: dict[str, AccountState] = {}

    def observe(self, d: Digest) -> AccountState:
        """Fold one request into its account's state and recompute the account's own log-odds."""
        state = self.accounts.get(d.account)
        if state is None:
            state = self.accounts[d.account] = AccountState(d.account, self.signals, d.ts)
        dt = d.ts - state.last_ts
        decay = math.exp(-dt / self.tau_s) if dt > 0 else 1.0
        ctx = self.context
        state.evidence = evidence = [observe(sub, d, decay, ctx) for observe, sub in zip(self._observers, state.states)]
        state.own = self.combine(evidence)
        state.n += 1
        state.volume = state.volume * decay + 1.0
        if d.ts > state.last_ts:
            state.last_ts = d.ts
        state.dirty = True
        return state

    def get(self, account: str) -> AccountState | None:
        return self.accounts.get(account)

    def __iter__(self) -> Iterator[AccountState]:
        return iter(self.accounts.values())

    def __len__(self) -> int:
        return len(self.accounts)

    def reasons(self, state: AccountState, limit: int = 5) -> list[str]:
        """Human-readable reasons, strongest first, each with its log-odds contribution."""
        ranked = sorted(range(len(self.signals)), key=lambda i: -state.evidence[i])
        out = []
        for i in ranked[:limit]:
            e = state.evidence[i]
            if e < REASON_MIN:
                break
            out.append(f"{self.signals[i].explain(state.states[i])} [+{e:.1f}]")
        if state.campaign is not None and state.campaign_logit > state.own and state.campaign_reason:
            out.insert(0, state.campaign_reason)
        return out

    def summary(self, state: AccountState) -> list[float]:
        """The concatenated additive summaries of all signals (campaign pooling)."""
        row: list[float] = []
        for signal, sub in zip(self.signals, state.states):
            row.extend(signal.summary(sub))
        return row

    def links(self, state: AccountState) -> list[Link]:
        out: list[Link] = []
        for signal, sub in zip(self.signals, state.states):
            out.extend(signal.links(sub))
        return out
