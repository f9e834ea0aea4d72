"""The Detector: one object that the gateway and offline replay use identically.

    detector.observe(event)               # hot path: O(1) signal updates for the event's account
    detector.maybe_run_campaigns(now_ts)  # every campaign_interval_s of event time: the campaign job
    detector.verdict(account)             # score, flagged, reasons, campaign, first_flagged_ts
    detector.report()                     # the detection report (docs/architecture.md)

The detector is not thread-safe: call it from one thread. A server that wants the campaign job
off that thread can split it: `rows = campaign_snapshot(now)` (cheap), `campaigns.run(...)` on
a worker (pure), `apply_campaigns(result)` back on the detector's thread; `run_campaigns` does
the three in a row.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from cuirass.detect import campaigns
from cuirass.detect.campaigns import AccountRow, Campaign, CampaignResult, FeatureIndex, KnownNetwork
from cuirass.detect.digest import Digest, digest
from cuirass.detect.evidence import logit, sigmoid
from cuirass.detect.scoring import DEFAULT_TAU_S, AccountState, Scorer
from cuirass.detect.signals import build
from cuirass.events.record import Event

DEFAULT_THRESHOLD = 0.98  # score threshold when no calibration is given (log-odds ~ +3.9)
DEFAULT_CAMPAIGN_INTERVAL_S = 3600.0
DEFAULT_CAMPAIGN_WINDOW_S = 3 * 86400.0
PHRASING_LIFT = 3.0  # most log-odds one sentence or near-duplicate phrasing alone lends an account (MAX_LIFT: 5)
MAX_IDLE_CAMPAIGNS = 256  # campaigns kept beyond the last job's before those no account refers to are dropped
MAX_KNOWN = 32  # known networks of earlier windows kept (the most recently remembered)
ROW_REFRESH_S = 6 * 3600.0  # the campaign row of an account its own score flags is refreshed at most this often


@dataclasses.dataclass(frozen=True, slots=True)
class Verdict:
    """What the detector currently thinks of one account."""

    account: str
    score: float  # current risk in [0, 1]
    flagged: bool  # score >= threshold
    reasons: tuple[str, ...]
    campaign: str | None
    first_flagged_ts: float | None  # event time of the first request (or campaign job) that flagged it
    peak_score: float = 0.0


def threshold_from(calibration: Mapping[str, Any] | None) -> float:
    """The score threshold of a calibration dict (calibrate.py writes them), or the default."""
    if calibration is None:
        return DEFAULT_THRESHOLD
    value = calibration.get("threshold") if isinstance(calibration, Mapping) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < float(value) <= 1.0 + 1e-9:
        raise ValueError(f"calibration needs a numeric 'threshold' in (0, 1], got {value!r}")
    return float(value)


class Detector:
    """Online account scoring plus the periodic campaign job, with a calibrated threshold."""

    def __init__(
        self,
        calibration: Mapping[str, Any] | None = None,
        *,
        campaign_interval_s: float = DEFAULT_CAMPAIGN_INTERVAL_S,
        campaign_window_s: float = DEFAULT_CAMPAIGN_WINDOW_S,
        signals: Sequence[str] | None = None,
        tau_s: float = DEFAULT_TAU_S,
        seed: int = 0,
    ) -> None:
        if campaign_interval_s <= 0 or campaign_window_s <= 0:
            raise ValueError("campaign interval and window must be positive")
        self.threshold = threshold_from(calibration)
        self.threshold_logit = logit(min(self.threshold, 1.0 - 1e-12))
        self.campaign_interval_s = float(campaign_interval_s)
        self.campaign_window_s = float(campaign_window_s)
        self.seed = seed
        self.scorer = Scorer(build(signals), tau_s)
        self.events = 0
        self.last_ts: float | None = None
        self.campaigns: dict[str, Campaign] = {}
        self.campaign_runs = 0
        self._next_campaign_ts: float | None = None
        self._rows: dict[str, AccountRow] = {}
        self._features = FeatureIndex()
        self._assignment: dict[object, int] = {}  # last job's communities, to warm-start the next
        self._standing: dict[str, float] = {}  # last job's lifts: account -> its campaign's log-odds
        self._offsets = campaigns.offsets_of(self.scorer.signals)
        self._signature_keys: dict[int, tuple[str, str]] = {}  # template/system key -> (campaign id, feature)
        self._signature_payments: dict[str, str] = {}
        self._signed: dict[str, tuple[str, float]] = {}  # recent jobs' signatures: feature -> (campaign id, job time)
        self._remembered: dict[str, KnownNetwork] = {}  # networks of earlier windows (remember)
        self._known_rows: list[AccountRow] = []  # their members' rows, in every job's graph

    # -- hot path -------------------------------------------------------------------------

    def observe(self, event: Event) -> None:
        """Fold one request event into its account's state (O(1))."""
        self.observe_digest(digest(event))

    def observe_digest(self, d: Digest) -> None:
        state = self.scorer.observe(d)
        self.events += 1
        if self.last_ts is None or d.ts > self.last_ts:
            self.last_ts = d.ts
        if self._signature_keys or self._signature_payments:
            self._match_signatures(state, d)
        self._update_flag(state, d.ts)

    def _match_signatures(self, state: AccountState, d: Digest) -> None:
        """Attach an account to a flagged campaign whose signature its request carries.

        Two distinct signature features are needed, or the campaign's payment instrument alone, or one exact
        sentence of its template. Matches add up over the account's requests; exact ones (not near-duplicates)
        outlive the job that found them while the signature stays installed (apply_campaigns): a thin network's
        member writes its wording once in several requests, a day apart. One sentence alone, or near-duplicate
        phrasing alone (sketch.py), lifts by at most PHRASING_LIFT over the account's own evidence: a person who
        pastes a sentence the network uses is not its member, and loose phrasing is shared by chance more often
        than an exact template (formulaic benchmark questions that people ask too). Where most of the campaign's
        members share binding infrastructure (Campaign.binding), an account whose matches are all phrasing
        (templates, near-duplicates) must hold some of that infrastructure too: phrasing alone is what a
        person asking what the campaign harvests shares with it (campaigns.tied asks the same of lifts: two
        kinds of tie, one of them content). A system prompt or card of the signature is a second kind.
        """
        found: list[tuple[str, str]] = []
        signature = self._signature_keys
        if (
            not signature.keys().isdisjoint(d.keys)
            or not signature.keys().isdisjoint(d.near)
            or d.system_key in signature
        ):
            for key in (*d.keys, *d.near, d.system_key):
                hit = signature.get(key)
                if hit is not None:
                    found.append(hit)
        if d.payment is not None:
            cid = self._signature_payments.get(d.payment)
            if cid is not None:
                found += [(cid, "pay:" + d.payment), (cid, "pay*")]
        if not found:
            return
        matches = state.matches if state.matches is not None else {}
        state.matches = matches
        for cid, feature in found:
            matches.setdefault(cid, set()).add(feature)
        self._lift_by_signature(state)

    def _lift_by_signature(self, state: AccountState) -> None:
        """Lift an account to the campaign whose signature features it has matched (see _match_signatures)."""
        for cid, matched in (state.matches or {}).items():
            campaign = self.campaigns.get(cid)
            if campaign is None or campaign.logit <= state.campaign_logit:
                continue  # it could lend no more than the account has (a lifted member's every request comes here)
            if len(matched) < 2 and not any(f.startswith("tpl:") for f in matched):
                continue
            target = campaign.logit
            if len(matched) < 2 or all(f.startswith("near:") for f in matched):  # one sentence, or loose phrasing
                target = min(target, state.own + PHRASING_LIFT)
            if target <= state.campaign_logit:
                continue
            if (
                campaign.binding
                and all(f.partition(":")[0] in campaigns.PHRASING_KINDS for f in matched)
                and campaign.binding.isdisjoint(self.scorer.links(state))
            ):
                continue  # writes like a campaign whose members share infrastructure, and shares nothing else
            member = self.scorer.summary(state)
            if campaigns.belongs(self.scorer.signals, self._offsets, member, campaign.pooled):
                state.campaign = cid
                state.campaign_logit = target
                state.campaign_reason = f"carries the signature of campaign {cid} [{campaign.logit:+.1f}]"

    def _forget_campaigns(self, current: set[str]) -> None:
        """Drop campaigns that neither the last job found nor any account refers to (bounded memory)."""
        held = {s.campaign for s in self.scorer if s.campaign is not None} | current | self._remembered.keys()
        held.update(cid for cid, _ in self._signed.values())
        self.campaigns = {cid: c for cid, c in self.campaigns.items() if cid in held}

    def _update_flag(self, state: AccountState, ts: float) -> None:
        score = state.score
        if score > state.peak:
            state.peak = score
            state.peak_ts = ts
        if state.first_flagged_ts is None and score >= self.threshold:
            state.first_flagged_ts = ts
            state.flag_reasons = self.scorer.reasons(state)

    # -- campaign job ---------------------------------------------------------------------

    def maybe_run_campaigns(self, now_ts: float) -> bool:
        """Run the campaign job when event time crosses the next multiple of campaign_interval_s.

        The schedule is a fixed grid of event time, so a replay of a log and of any prefix of it
        run the same jobs at the same times.
        """
        interval = self.campaign_interval_s
        if self._next_campaign_ts is None:
            self._next_campaign_ts = (math.floor(now_ts / interval) + 1) * interval
            return False
        if now_ts < self._next_campaign_ts:
            return False
        self.run_campaigns(now_ts)
        self._next_campaign_ts = (math.floor(now_ts / interval) + 1) * interval
        return True

    def run_campaigns(self, now_ts: float) -> CampaignResult:
        """Snapshot, judge and apply the campaign job now (uses only what was observed so far)."""
        rows = self.campaign_snapshot(now_ts)
        result = campaigns.run(
            rows,
            self._features,
            self.scorer.signals,
            self.threshold_logit,
            now_ts,
            self.seed,
            self._assignment,
            self._standing,
        )
        self.apply_campaigns(result)
        return result

    def campaign_snapshot(self, now_ts: float) -> list[AccountRow]:
        """Rows of the accounts active within campaign_window_s before now_ts (cached when unchanged;
        accounts whose own score is over the threshold, which need no lift, are re-read at most every
        ROW_REFRESH_S). The rule reads the account's own score, not its verdict, so a job's input depends on
        the accounts' events alone, not on what earlier jobs decided: a history run on Spark (cuirass.spark)
        rebuilds every job's input exactly from per-account passes."""
        since = now_ts - self.campaign_window_s
        rows = []
        cache = self._rows
        for state in self.scorer:
            if state.last_ts < since:
                continue
            row = cache.get(state.account)
            stale = row is None or (
                state.dirty and (state.own < self.threshold_logit or now_ts - row.built_ts >= ROW_REFRESH_S)
            )
            if row is None or stale:
                row = AccountRow(
                    state.account,
                    state.own,
                    np.asarray(self.scorer.summary(state), dtype=np.float64),
                    self._features.intern(self.scorer.links(state)),
                    state.volume,
                    now_ts,
                )
                cache[state.account] = row
                state.dirty = False
            rows.append(row)
        rows += self._known_rows
        if len(cache) > 2 * len(rows) + 1024:  # forget rows of accounts that left the window
            keep = {r.account for r in rows}
            self._rows = {a: r for a, r in cache.items() if a in keep}
        if campaigns.needs_compaction(self._features, rows):
            self._features = campaigns.compact(self._features, rows)
            self._rows = {r.account: r for r in rows}  # the other cached rows hold ids of the old index
        return rows

    def apply_campaigns(self, result: CampaignResult) -> None:
        """Install a campaign job's lifts and signatures; flag the members it lifts over the threshold.

        A signature's exact features (templates, system prompts, cards) stay installed for campaign_window_s after
        the last job that found them: a thin network is judged a campaign at some jobs and not at others while its
        members go on writing its wording. Its near-duplicate phrasings last until the next job only: loose
        phrasing kept for days was matched by a student asking for the steps in his own words (BENCHMARKS
        "Signature matches that last")."""
        accounts = self.scorer.accounts
        since = result.now - self.campaign_window_s
        signed = {
            f: v
            for f, v in self._signed.items()
            if v[1] >= since and f not in result.signatures and not f.startswith("near:")
        }
        self._signed = {**{f: (cid, result.now) for f, cid in result.signatures.items()}, **signed}
        self._install_signatures()
        unflagged: list[AccountState] = []  # with signature matches kept, which may now add up to a lift
        held: dict[str, tuple[str, str] | None] = {}  # feature -> (campaign id, feature) where still installed
        for account in result.considered:
            state = accounts.get(account)
            if state is not None:
                state.campaign, state.campaign_logit, state.campaign_reason = None, -math.inf, None
                if state.matches and state.first_flagged_ts is None:
                    state.matches = self._still_signed(state.matches, held)
                    if state.matches:
                        unflagged.append(state)
                else:  # a flagged account stays flagged; its next matching request lifts it again
                    state.matches = None
        for campaign in result.campaigns:
            self.campaigns[campaign.id] = campaign
        for account, (cid, lift, reason) in result.lifts.items():
            state = accounts.get(account)
            if state is not None:
                state.campaign, state.campaign_logit, state.campaign_reason = cid, lift, reason
                self._update_flag(state, result.now)
        for state in unflagged:
            self._lift_by_signature(state)
            self._update_flag(state, result.now)
        self._assignment = result.assignment
        self._standing = campaigns.standing_of(result)
        if len(self.campaigns) > len(result.campaigns) + MAX_IDLE_CAMPAIGNS:
            self._forget_campaigns({c.id for c in result.campaigns})
        self.campaign_runs += 1

    def _still_signed(
        self, matches: dict[str, set[str]], held: dict[str, tuple[str, str] | None]
    ) -> dict[str, set[str]] | None:
        """An account's exact signature matches that the installed signatures still hold, each under the campaign
        that holds it now (a network's campaign id follows its most shared feature, which may change).
        Near-duplicate matches are dropped: loose phrasing collides by chance, and kept for weeks a person's
        chance collisions add up (in the lab's full run, a person's four near-duplicates of an agent network's
        wording, met a day before his own evidence rose, flagged him). `held` memoises the lookup over one job."""
        kept: dict[str, set[str]] = {}
        for matched in matches.values():
            for feature in sorted(matched):  # not a set's order, which changes with the process's hash seed
                if feature not in held:
                    held[feature] = self._signed_as(feature)
                if (hit := held[feature]) is not None:
                    kept.setdefault(hit[0], set()).add(hit[1])
                    if feature.startswith("pay:"):
                        kept[hit[0]].add("pay*")  # a card alone is enough (_match_signatures)
        return kept or None

    def _signed_as(self, feature: str) -> tuple[str, str] | None:
        """(campaign id, feature) of an exact signature feature (template, system prompt, card) still installed."""
        kind, _, value = feature.partition(":")
        if kind in ("tpl", "sys"):
            hit = self._signature_keys.get(int(value, 16))
            return hit if hit is not None and hit[1] == feature else None
        cid = self._signature_payments.get(value) if kind == "pay" else None
        return None if cid is None else (cid, feature)

    def _install_signatures(self) -> None:
        """The signature tables: recent jobs' campaigns first (the latest job's first), then the known networks'
        (remember)."""
        self._signature_keys, self._signature_payments = {}, {}
        known = [(feature, n.campaign.id) for n in self._remembered.values() for feature in n.campaign.signature]
        for feature, cid in [*((f, cid) for f, (cid, _) in self._signed.items()), *known]:
            kind, _, value = feature.partition(":")
            if kind in campaigns.HASHED_KINDS:
                self._signature_keys.setdefault(int(value, 16), (cid, feature))
            elif kind == "pay":
                self._signature_payments.setdefault(value, cid)

    def known_networks(self) -> list[KnownNetwork]:
        """The campaigns that hold accounts now, with rows of their members (those of the last campaign job, the
        highest own score first), for a later detector to remember (a new window, a restart)."""
        members: dict[str, list[AccountRow]] = {}
        for state in self.scorer:
            row = self._rows.get(state.account)
            if state.campaign is not None and state.campaign_logit > -math.inf and row is not None:
                members.setdefault(state.campaign, []).append(row)
        features = self._features.features
        out = []
        for cid, rows in members.items():
            rows.sort(key=lambda r: -r.own)
            kept = [
                (r.account, r.own, r.summary.tolist(), [features[f] for f in r.features.tolist()], r.volume)
                for r in rows[: campaigns.KNOWN_MEMBERS]
            ]
            out.append(KnownNetwork(self.campaigns[cid], kept))
        return out

    def remember(self, networks: Sequence[KnownNetwork]) -> None:
        """Keep networks found earlier as known (at most MAX_KNOWN, the most recently remembered): their
        signatures stay installed whatever later jobs find, and their members' rows join every campaign job
        (campaigns.KnownNetwork), so an account that joins one is judged with it from its first requests."""
        for network in networks:
            self._remembered.pop(network.campaign.id, None)
            self._remembered[network.campaign.id] = network
        while len(self._remembered) > MAX_KNOWN:
            del self._remembered[next(iter(self._remembered))]
        self.campaigns.update((cid, n.campaign) for cid, n in self._remembered.items())
        self._known_rows = [
            AccountRow(
                f"{campaigns.REMEMBERED}{account}",
                own,
                np.asarray(summary, dtype=np.float64),
                self._features.intern(features),
                volume,
            )
            for network in self._remembered.values()
            for account, own, summary, features, volume in network.members
        ]
        self._install_signatures()

    # -- verdicts -------------------------------------------------------------------------

    def verdict(self, account: str) -> Verdict:
        """The current verdict on an account (an unknown account gets the prior, unflagged)."""
        state = self.scorer.get(account)
        if state is None:
            return Verdict(account, 0.0, False, (), None, None, 0.0)
        score = state.score
        return Verdict(
            account,
            score,
            score >= self.threshold,
            tuple(self.scorer.reasons(state)),
            state.campaign,
            state.first_flagged_ts,
            state.peak,
        )

    def verdicts(self) -> Iterator[Verdict]:
        for state in self.scorer:
            yield self.verdict(state.account)

    def forget(self, before_ts: float) -> int:
        """Drop the state of unflagged accounts idle since before `before_ts` (their evidence has
        decayed); a long-running service calls this now and then. Returns how many were dropped."""
        stale = [a for a, s in self.scorer.accounts.items() if s.last_ts < before_ts and s.first_flagged_ts is None]
        for account in stale:
            del self.scorer.accounts[account]
            self._rows.pop(account, None)
        return len(stale)

    def campaign_report(self) -> list[dict[str, Any]]:
        """The report's "campaigns" part alone (cheap enough to call after every campaign job):
        campaigns that currently hold at least one account, biggest first."""
        members: dict[str, list[str]] = {}
        for state in self.scorer:
            if state.campaign is not None and state.campaign_logit > -math.inf:
                members.setdefault(state.campaign, []).append(state.account)
        found = []
        for cid in sorted(members, key=lambda c: (-len(members[c]), c)):
            campaign = self.campaigns[cid]
            found.append(
                {
                    "id": cid,
                    "accounts": sorted(members[cid]),
                    "score": sigmoid(campaign.logit),
                    "reasons": list(campaign.reasons),
                    "signature": list(campaign.signature),
                }
            )
        return found

    def report(self) -> dict[str, Any]:
        """The detection report (docs/architecture.md). An account's `score` is its peak so far, so that
        `flagged` (ever reached the threshold) and calibration (on peak scores) agree; its
        `reasons` are those it was flagged for (else its current ones)."""
        accounts: list[dict[str, Any]] = []
        for state in self.scorer:
            flagged = state.first_flagged_ts is not None
            campaign = state.campaign if state.campaign is not None and state.campaign_logit > -math.inf else None
            reasons = state.flag_reasons if flagged and state.flag_reasons else self.scorer.reasons(state)
            accounts.append(
                {
                    "account": state.account,
                    "score": state.peak,
                    "flagged": flagged,
                    "first_flagged_ts": state.first_flagged_ts,
                    "campaign": campaign,
                    "reasons": list(reasons),
                    "score_now": state.score,
                    "requests": state.n,
                }
            )
        accounts.sort(key=lambda a: (-a["score"], a["account"]))
        found = self.campaign_report()
        return {
            "accounts": accounts,
            "campaigns": found,
            "threshold": self.threshold,
            "summary": {
                "events": self.events,
                "accounts": len(accounts),
                "flagged": sum(1 for a in accounts if a["flagged"]),
                "campaigns": len(found),
                "campaign_runs": self.campaign_runs,
                "last_ts": self.last_ts,
            },
        }
