"""Campaign detection: find networks of accounts that harvest together, and judge each as a whole.

A periodic job (off the hot path) over the accounts active in a recent window:

1. Link. Each account offers linking features (signals' `links`: template keys and system
   prompts, near-duplicate phrasing buckets (sketch.py), network prefixes, user agent + network, payment instrument, sign-up hour, start
   hour, model pivot, dominant topic). Accounts and features form a bipartite graph: a feature
   node is the bucket "everyone who has this" (as in LSH banding), so no pair of accounts is
   ever enumerated and the graph grows linearly with the accounts. An edge weighs
       w_kind * idf,   idf = ln(N / df)   (Sparck Jones 1972; df = accounts holding it)
   so a rare shared card or template binds far more than the SDK everybody uses or a big
   corporate NAT. Features held by fewer than MIN_DF accounts are left out: a pair is too
   small to be a campaign, and such pairs (two people quoting the same text) are mostly chance. Time buckets (sign-up hour, start hour) and topics are coincidences by
   nature: they weigh w_kind whatever their df.
2. Cluster. Leiden (Traag, Waltman & van Eck 2019; igraph's implementation, seeded) maximises
   weighted modularity; feature nodes are then dropped from the communities. Feature nodes with the
   same holders (a sentence's exact template key and its LSH bands, most often) are one node whose
   edges carry their summed weights: every partition that keeps them together has the same modularity,
   and the graph has about half the edges (`_twins`). Feature vertices go in the order of a hash of their names
   (`FeatureIndex.keys`), so a replay, the shards' leader and Spark, which meet features in different orders, build
   the same graph and find the same communities.
3. Judge. A community of >= MIN_SIZE accounts is scored as ONE pooled account, its typical
   member: each member's additive signal summary is divided by its request volume, the
   column-wise median over members is taken (robust: a loud minority, or a few attackers
   inside a big benign group, cannot speak for the rest), and scaled back to the community's
   volume (each member counting at most N_CAP requests); facts about an account rather than counts
   (age, pivot: Signal.per_account) pool as the share of members holding them. A rare trait (asking for worked
   steps: Signal.rare_trait) is read off groups of the members that sent few requests each, not off each of
   them (`pool`): a thin network shows it in one request of ten, and so in none of most members' first two.
   Every signal's evidence is recomputed on that pool; coordination evidence adds how many members share the
   community's top feature of each kind:
       logit_C = combine(e_i(pool)) + min(COORD_CAP, f(size) * sum_k c_k * share_k) + replication
   (combine = PRIOR + censored sum, evidence.py; replication: see `replication`).
   A benign group pools to ordinary rates and scores low, however tightly it is linked.
   Communities judged over the threshold that share binding infrastructure (a network, user agent +
   network, card or system prompt that most members of each hold) are joined and judged again as one
   (`joins`): modularity may split a network that rotates a few prompt templates into several
   communities, each too small to lift, while all of them send from the same proxies.
   A community most of whose accounts the last job lifted (`standing`) is that campaign still: it keeps the
   campaign's log-odds where its own pooled evidence has fallen below them. A network's evidence fades as it
   matures (its accounts are no longer new, its pacing loosens) while its members stay and new ones join;
   judged afresh each hour, a network caught in its first days stopped being a campaign until something new
   gave it away, and its late joiners were served for days.
4. Lift. In a community whose logit_C clears the threshold by LIFT_MARGIN (a community's
   judgement is noisier than an account's), a member is lifted towards logit_C,
   by at most evidence.MAX_LIFT log-odds, when (a) it is tied to the community by links of two
   kinds (`tied`): a content or payment feature that at least TIE_SHARE of the members share and
   that is mostly held inside the community, corroborated by a second such feature of another kind
   or by a network (or user agent + network) that TIE_SHARE of the members share (a proxy pool may
   span several communities, so it need not be mostly inside this one); one shared prompt phrasing
   alone is what a person who writes like the campaign has; where at least MIN_SIZE members are individually
   suspicious, a link ties only where one of them holds it too (a team's own card and office network beside a
   campaign are not the campaign's), and (b) its own requests
   are clearly more likely under the community's pooled behaviour than under an ordinary
   user's (sum of the signals' censored `consistency` log-likelihood ratios >= MIN_CONSISTENCY,
   of which content signals >= MIN_CONTENT_CONSISTENCY). (a) and (b) keep innocent accounts
   that merely sit next to a campaign in the graph out of it; the bounded lift means a campaign
   tips its quiet members over the threshold but cannot convict a spotless account. Communities
   under LIFT_MIN_SIZE are too small to vouch for anyone.
   Features most members share and few outsiders hold become the campaign's signature, so a
   new account that uses them is attached online, between jobs; a feature none of the lifted members holds is
   not one of them (a team's card inside a big community is not the campaign's). Where most members share
   binding infrastructure, the community's accounts without it are left out of that count (`_signature`), and
   an account whose only tie is phrasing and that lacks the campaign's network or card
   (Campaign.binding) is not attached: it asks what the campaign asks, as people who ask the
   harvested task do. A near-duplicate phrasing (kind
   "near") must also be held by TIE_SHARE of the community: a network's way of asking is used
   broadly, while a sentence of one harvested item (a public benchmark question that people ask
   too) is held by a few members only.
5. Remember. A detector may keep networks found earlier (a previous window, before a restart) as
   KnownNetwork: the campaign and rows of up to KNOWN_MEMBERS of its members, which join every later
   job's graph beside the live accounts (their lifts go nowhere). A fresh account that links to them
   lands in their community and is tied and judged with the known network at once, where alone it,
   and the few other fresh members around it, would be too small a community to lift anyone.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import math
import random
import zlib
from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

import igraph
import numpy as np

from cuirass.detect.evidence import GROUP_CAPS, MAX_LIFT, N_CAP, PRIOR, combine
from cuirass.detect.signals import Link, Signal

MIN_SIZE = 3
MIN_DF = 3  # a feature two accounts share is as often chance as collusion; campaigns are bigger than pairs
# kind -> (edge weight, scaled by idf?)
LINK_WEIGHTS: dict[str, tuple[float, bool]] = {
    "tpl": (1.0, True),
    "sys": (1.0, True),
    "near": (0.3, True),  # one sentence gives sketch.BANDS keys
    "pay": (1.0, True),
    "uanet": (0.6, True),
    "net": (0.4, True),
    "pivot": (0.3, True),
    "created": (0.5, False),
    "start": (0.2, False),
    "topic": (0.1, False),
}
# Coordination evidence per kind, times the share of members holding the top feature of that kind.
COORD_WEIGHTS = {
    "tpl": 1.5,
    "near": 1.0,
    "sys": 1.0,
    "pay": 1.0,
    "created": 0.8,
    "uanet": 0.5,
    "net": 0.3,
    "start": 0.3,
}
COORD_CAP = 2.5
POOL_REQUESTS = 10.0  # members with fewer requests pool a rare trait's rate in groups of about this many (pool)
REPLICATION, REPLICATION_CAP = 0.5, 2.0  # see replication()
COORD_MIN_SHARE = 0.25
CONTENT_KINDS = ("tpl", "near", "sys", "pay")  # what ties a member to a campaign (more than a shared NAT)
LINK_PURITY = 0.5  # share of a feature's holders in the community, to tie a member
TIE_SHARE = 0.1  # ... and share of the community holding it
TIE_LINK_KINDS = (*CONTENT_KINDS, "uanet", "net")  # the links that can tie a member (not time buckets, topics)
TIE_KINDS = 2  # a member is tied by links of this many kinds, one of them content
PHRASING_KINDS = frozenset(("tpl", "near"))  # an exact template and a near-duplicate of it: one kind for ties
BINDING_KINDS = ("net", "uanet", "pay", "sys")  # what most members of a network that shares infrastructure hold
INFRA_KINDS = ("net", "uanet", "pay")  # of which where it sends from and pays with (not what it sends)
MAJORITY = 0.5
LIFT_MIN_SIZE = 10  # smaller communities are judged but lift nobody
LIFT_MARGIN = 1.0  # log-odds by which a community must clear the threshold to lift
MIN_CONSISTENCY = 2.0  # a member's data must be e^2 times likelier under the campaign ...
MIN_CONTENT_CONSISTENCY = 1.0  # ... and not only through automation signals
INDEX_FLOOR = 100_000  # interned features below which the index is never compacted ...
INDEX_SLACK = 4  # ... and above which it is, once it holds this many times the features the window uses
HASHED_KINDS = ("tpl", "near", "sys")  # kinds whose values are 32-bit hashes (shown in hex)
SIGNATURE_MIN = 3  # members that must share a signature feature ...
SIGNATURE_PURITY = 0.8  # ... and the share of its holders that are members
SIGNATURE_LIFTED = 1  # ... and the members it lifts that hold it
KNOWN_MEMBERS = 64  # member rows a known network keeps (Detector.remember)
REMEMBERED = "\x00known:"  # prefix of a remembered member's row: no live account id holds a NUL
_TIE_BIT = {kind: 1 << i for i, kind in enumerate(TIE_LINK_KINDS)}  # `tied` holds a member's kinds as bits
_PHRASING_BITS = sum(_TIE_BIT[k] for k in PHRASING_KINDS)
_CONTENT_BITS = sum(_TIE_BIT[k] for k in CONTENT_KINDS)


_KINDS = tuple(LINK_WEIGHTS)  # a feature's kind by its code (FeatureIndex keeps codes, one byte per feature)
_KIND_CODE = {kind: code for code, kind in enumerate(_KINDS)}
_KIND_WEIGHT = np.array([LINK_WEIGHTS[k][0] for k in _KINDS], dtype=np.float64)
_KIND_SCALED = np.array([LINK_WEIGHTS[k][1] for k in _KINDS], dtype=bool)
_KIND_CONTENT = np.array([k in CONTENT_KINDS for k in _KINDS], dtype=bool)
_KIND_TIE_BIT = np.array([_TIE_BIT.get(k, 0) for k in _KINDS], dtype=np.int64)
_KIND_BINDING = np.array([k in BINDING_KINDS for k in _KINDS], dtype=bool)


def _order_key(feature: Link) -> int:
    """A feature's place among a job's feature vertices: a 64-bit hash of its kind and value, the same in every
    process, whatever order the features were interned in."""
    digest = hashlib.blake2b(f"{feature[0]}:{feature[1]}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


class FeatureIndex:
    """Interned linking features: (kind, value) -> id, with each id's kind code and order key in growing arrays
    (so that a job reads every feature's properties with one array lookup, not a list rebuilt per job)."""

    def __init__(self) -> None:
        self.ids: dict[Link, int] = {}
        self.features: list[Link] = []
        self._codes = np.zeros(1024, dtype=np.int8)
        self._keys = np.zeros(1024, dtype=np.uint64)

    def __setstate__(self, state: dict[str, object]) -> None:
        """Unpickle; an index pickled before order keys existed (a leader's job of an earlier version) gets them."""
        self.__dict__.update(state)
        if "_keys" not in state:
            self._keys = np.zeros(max(1024, len(self._codes)), dtype=np.uint64)
            self._keys[: len(self.features)] = list(map(_order_key, self.features))

    def intern(self, features: Iterable[Link]) -> np.ndarray:
        """Sorted unique ids of the features (unknown kinds are ignored)."""
        features = list(features)
        found = list(map(self.ids.get, features, itertools.repeat(-1)))
        if -1 in found:  # new features get ids in the order they come; unknown kinds stay -1
            found = [self._add(feature) if fid < 0 else fid for feature, fid in zip(features, found)]
            return np.array(sorted(set(found) - {-1}), dtype=np.int64)
        return np.array(sorted(set(found)), dtype=np.int64)

    def _add(self, feature: Link) -> int:
        """The id of a feature not yet interned (it may have been a moment ago); -1 for an unknown kind."""
        fid = self.ids.get(feature)
        if fid is not None:
            return fid
        code = _KIND_CODE.get(feature[0])
        if code is None:
            return -1
        fid = self.ids[feature] = len(self.features)
        self.features.append(feature)
        if fid == len(self._codes):
            self._codes = np.concatenate([self._codes, np.zeros_like(self._codes)])
            self._keys = np.concatenate([self._keys, np.zeros_like(self._keys)])
        self._codes[fid] = code
        self._keys[fid] = _order_key(feature)
        return fid

    def __len__(self) -> int:
        return len(self.features)

    def kind(self, fid: int) -> str:
        return self.features[fid][0]

    def codes(self, fids: np.ndarray) -> np.ndarray:
        """The kind code (an index into _KINDS) of each feature id."""
        codes: np.ndarray = self._codes[fids]
        return codes

    def keys(self, fids: np.ndarray) -> np.ndarray:
        """The order key (`_order_key`) of each feature id."""
        keys: np.ndarray = self._keys[fids]
        return keys

    def name(self, fid: int) -> str:
        """ "kind:value" as shown in reasons and signatures (hash values in hex)."""
        kind, value = self.features[fid]
        return f"{kind}:{value:08x}" if isinstance(value, int) and kind in HASHED_KINDS else f"{kind}:{value}"

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(edge weight, idf-scaled?, is content kind) per feature id."""
        codes = self._codes[: len(self.features)]
        return _KIND_WEIGHT[codes], _KIND_SCALED[codes], _KIND_CONTENT[codes]


def compact(index: FeatureIndex, rows: Sequence[AccountRow]) -> FeatureIndex:
    """A fresh index of only the features `rows` hold, interned in row order; the rows' ids are rewritten to it.

    Interned features are never forgotten otherwise: in a long-running service every template,
    phrasing and address ever seen would stay. The detector and the shards' leader call this when
    the index outgrows what the current window holds (needs_compaction), so it stays proportional
    to the accounts in the window. Ids only name vertices of the next job's graph; no verdict
    depends on their values.
    """
    fresh = FeatureIndex()
    remap = np.full(len(index), -1, dtype=np.int64)
    for row in rows:
        ids = row.features
        new = remap[ids]
        missing = new < 0
        if missing.any():
            for fid in ids[missing].tolist():
                remap[fid] = fresh.intern([index.features[fid]])[0]
            new = remap[ids]
        row.features = np.sort(new)
    return fresh


def needs_compaction(index: FeatureIndex, rows: Sequence[AccountRow]) -> bool:
    """Whether the index holds several times the features the rows use (and more than a floor)."""
    if len(index) <= INDEX_FLOOR:
        return False
    live = sum(len(r.features) for r in rows)  # an upper bound on the distinct features in use
    return len(index) > INDEX_SLACK * max(live, 1)


@dataclasses.dataclass(slots=True)
class AccountRow:
    """What the job needs of one account; a copy, so the job may run on another thread."""

    account: str
    own: float  # the account's own log-odds
    summary: np.ndarray  # concatenated signal summaries
    features: np.ndarray  # interned linking feature ids (unique)
    volume: float  # decayed request count
    built_ts: float = 0.0  # event time the row was read from the account's state


@dataclasses.dataclass(slots=True)
class Campaign:
    id: str
    accounts: list[str]
    logit: float
    reasons: list[str]
    signature: list[str]
    pooled: list[float]  # the pooled summary, to check accounts that attach online
    # The infrastructure (INFRA_KINDS) most members share, or none: an account without any of it whose signature
    # matches are all phrasing writes like the campaign but is not of it (Detector._match_signatures), as in `tied`.
    binding: frozenset[Link] = frozenset()


@dataclasses.dataclass(slots=True)
class KnownNetwork:
    """A campaign found in an earlier window, remembered by a later detector (Detector.remember): the campaign
    (its signature is matched online) and rows of up to KNOWN_MEMBERS of its members, features by name, which
    join every later job's graph as if still active. A new account that links to them is judged in one
    community with them, so it is tied and judged as a member of the network from its first requests,
    whether or not enough new members have gathered to form a community of their own."""

    campaign: Campaign
    members: list[tuple[str, float, list[float], list[Link], float]]  # account, own, summary, features, volume


@dataclasses.dataclass(slots=True)
class CampaignResult:
    now: float
    considered: list[str]  # accounts the job looked at (their old lifts are replaced)
    campaigns: list[Campaign]  # communities judged to be campaigns
    lifts: dict[str, tuple[str, float, str]]  # account -> (campaign id, log-odds, reason)
    signatures: dict[str, str]  # linking feature -> campaign id
    assignment: dict[object, int] = dataclasses.field(default_factory=dict)  # vertex -> community (warm start)


def standing_of(result: CampaignResult) -> dict[str, float]:
    """The accounts a job lifted, each with its campaign's log-odds: the next job's `standing` (see `run`)."""
    return {account: logit for account, (_, logit, _) in result.lifts.items()}


def _size_factor(m: int) -> float:
    # Three accounts sharing a feature is weak coordination evidence; twenty or more is full.
    return min(1.0, math.log(m) / math.log(20.0))


def consistency(
    signals: Sequence[Signal], offsets: Sequence[int], member: Sequence[float], pooled: Sequence[float]
) -> tuple[float, float]:
    """(all, content): sums of the signals' censored LLRs, member under the campaign's pooled
    behaviour vs an ordinary user's; `content` leaves out grouped (automation) signals."""
    values = []
    for signal, start in zip(signals, offsets):
        end = start + signal.summary_size
        values.append(signal.consistency(member[start:end], pooled[start:end]))
    groups = [s.group for s in signals]
    content = sum(v for v, g in zip(values, groups) if g is None)
    return combine(values, groups) - PRIOR, content


def belongs(
    signals: Sequence[Signal], offsets: Sequence[int], member: Sequence[float], pooled: Sequence[float]
) -> bool:
    """Whether a member's own requests support its campaign's behaviour strongly enough to lift it."""
    total, content = consistency(signals, offsets, member, pooled)
    return total >= MIN_CONSISTENCY and content >= MIN_CONTENT_CONSISTENCY


def belongs_many(
    signals: Sequence[Signal], offsets: Sequence[int], members: np.ndarray, pooled: Sequence[float]
) -> np.ndarray:
    """`belongs` for each row of a (members x summary width) matrix, vectorised."""
    content = np.zeros(len(members))
    grouped: dict[str, np.ndarray] = {}
    for signal, start in zip(signals, offsets):
        end = start + signal.summary_size
        values = signal.consistency_many(members[:, start:end], pooled[start:end])
        if signal.group is None:
            content += values
        else:
            grouped[signal.group] = grouped.get(signal.group, 0.0) + values
    total = content.copy()
    for group, values in grouped.items():
        lo, hi = GROUP_CAPS.get(group, (np.inf, np.inf))
        total += np.clip(values, -lo, hi)
    return (total >= MIN_CONSISTENCY) & (content >= MIN_CONTENT_CONSISTENCY)


def columns(signals: Sequence[Signal], kind: str) -> np.ndarray:
    """Which columns of the concatenated summaries belong to signals whose `kind` attribute is set
    (Signal.per_account: facts about the account; Signal.rare_trait: counts of requests showing a trait)."""
    mask = np.zeros(sum(s.summary_size for s in signals), dtype=bool)
    for signal, start in zip(signals, offsets_of(signals), strict=True):
        mask[start : start + signal.summary_size] = getattr(signal, kind)
    return mask


def pool(summaries: np.ndarray, volumes: np.ndarray, facts: np.ndarray, traits: np.ndarray) -> np.ndarray:
    """The community's typical member at the community's volume: the column-wise median of per-request rates
    times the members' capped volume; per-account facts (`facts` columns) as the share of members holding them,
    times members.

    A rare trait (`traits` columns, Signal.rare_trait: asking for worked steps, a rubric, a final-answer format, a
    reused template) that a network shows in one request of ten is absent from nearly every member that sent two,
    and the median of their rates is nothing. So members with fewer than POOL_REQUESTS requests are taken in
    groups, in row order, each group holding about POOL_REQUESTS requests, and such a trait's rate is the median
    over the other members and these groups (a group's rate: the mean of its members'). This is the median of
    means (Nemirovsky & Yudin 1983): a loud minority of thin members cannot speak for the rest while it sits in
    fewer than half the groups, and members with enough requests of their own speak for themselves, so a few
    thin members beside many people do not make the people's community suspicious. Common traits (single-shot
    prompts) and traits of an account's requests taken together (the regularity of its timing, the narrowness of
    its topics) stay the median over members."""
    m = len(summaries)
    capped = np.minimum(volumes, N_CAP)
    rates = summaries / volumes[:, None]
    pooled: np.ndarray = np.median(rates, axis=0) * capped.sum()
    thin = np.flatnonzero(capped < POOL_REQUESTS)
    if len(thin) > 1 and traits.any():
        group = ((np.cumsum(capped[thin]) - capped[thin]) // POOL_REQUESTS).astype(np.int64)
        size = np.bincount(group)
        grouped = np.stack([np.bincount(group, weights=column) for column in rates[thin][:, traits].T], axis=1)
        units = np.concatenate([np.delete(rates[:, traits], thin, axis=0), grouped / size[:, None]])
        pooled[traits] = np.median(units, axis=0) * capped.sum()
    pooled[facts] = summaries[:, facts].mean(axis=0) * m
    return pooled


def offsets_of(signals: Sequence[Signal]) -> list[int]:
    out, width = [], 0
    for signal in signals:
        out.append(width)
        width += signal.summary_size
    return out


def _warm_start(keys: Sequence[object], previous: Mapping[object, int]) -> list[int]:
    """Initial communities: the previous job's for vertices seen then, a singleton for new ones.

    Starting Leiden from the last partition is faster and keeps communities (and campaign ids)
    stable from one job to the next; Leiden still moves whatever no longer fits. Old communities are
    numbered in the order their first vertex appears, new vertices after them in order.
    """
    old = np.array(list(map(previous.get, keys, itertools.repeat(-1))), dtype=np.int64)
    seen = old >= 0
    labels, first, inverse = np.unique(old[seen], return_index=True, return_inverse=True)
    rank = np.empty(len(labels), dtype=np.int64)
    rank[np.argsort(first)] = np.arange(len(labels))
    out = np.empty(len(keys), dtype=np.int64)
    out[seen] = rank[inverse]
    out[~seen] = len(labels) + np.arange(int((~seen).sum()))
    return out.tolist()


def _twins(
    fids: np.ndarray, owners: np.ndarray, features: np.ndarray, n: int, size: int
) -> tuple[np.ndarray, np.ndarray]:
    """(group of each of `features`, first feature of each group): features held by exactly the same accounts
    share a group, numbered in the order of their first feature. (fids[i], owners[i]) are the holdings, owners
    are row indices below n, feature ids below `size`.

    A holder set is named by the sum, modulo 2**64, of a random 64-bit value per holder: two different sets of
    the few thousand features of a job share a name with probability about 1e-12, and the values are seeded,
    so every run of a job groups alike."""
    salt = np.random.default_rng(0x7715).integers(0, np.iinfo(np.int64).max, size=n, dtype=np.uint64)
    held = np.zeros(size, dtype=np.uint64)
    np.add.at(held, fids, salt[owners])
    _, first, group = np.unique(held[features], return_index=True, return_inverse=True)
    order = np.argsort(first)
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return rank[group], features[first[order]]


class _Graph:
    """The bipartite graph of one job and the communities Leiden finds in it."""

    def __init__(
        self, rows: Sequence[AccountRow], index: FeatureIndex, seed: int, previous: Mapping[object, int] | None = None
    ) -> None:
        n = len(rows)
        features = [r.features for r in rows]
        lengths = np.array(list(map(len, features)), dtype=np.int64)
        fids = np.concatenate(features) if n else np.zeros(0, dtype=np.int64)
        owners = np.repeat(np.arange(n, dtype=np.int64), lengths)
        self.df = np.bincount(fids, minlength=len(index.features))
        weight, scaled, self.content = index.arrays()
        vertex = self.df >= MIN_DF  # the features that become vertices: ids in order, none sorted per job
        keep = vertex[fids]
        self.fids, self.owners = fids[keep], owners[keep]
        # Feature vertices held by the same accounts (the LSH bands of one sentence and its exact template key,
        # most often) become one vertex whose edges weigh what theirs did together: the modularity of every
        # partition that keeps them together is unchanged, and Leiden reads about half the edges (`_twins`).
        # In the order of their keys, not of their ids: ids follow the order features were first met, which differs
        # between a replay, the shards' leader and Spark, and Leiden's communities depend on the vertices' order.
        features_v = np.flatnonzero(vertex)
        features_v = features_v[np.argsort(index.keys(features_v), kind="stable")]
        group, first = _twins(self.fids, self.owners, features_v, n, len(index))
        group_of = np.zeros(len(index), dtype=np.int64)
        group_of[features_v] = group
        idf = np.maximum(np.log(n / self.df[features_v]), 0.05)
        grouped_w = np.bincount(group, weights=weight[features_v] * np.where(scaled[features_v], idf, 1.0))
        is_first = np.zeros(len(index), dtype=bool)
        is_first[first] = True
        edge = is_first[self.fids]
        edge_group = group_of[self.fids[edge]]
        graph = igraph.Graph(n=n + len(first))
        # Pairs of Python ints: on a 7,864-account job igraph took them in 14 ms against 19 ms for a numpy array of
        # pairs; at 813,000 edges the two were within 5% (209 against 200 ms, a synthetic graph).
        graph.add_edges(list(zip(self.owners[edge].tolist(), (n + edge_group).tolist())))
        accounts: list[object] = [r.account for r in rows]
        initial = _warm_start(accounts + [index.features[f] for f in first.tolist()], previous or {})
        igraph.set_random_number_generator(random.Random(seed))
        try:
            partition = graph.community_leiden(
                objective_function="modularity",
                weights=grouped_w[edge_group],
                n_iterations=2,
                initial_membership=initial,
            )
        finally:
            igraph.set_random_number_generator(random)
        labels = np.asarray(partition.membership, dtype=np.int64)
        # Leiden's own, joins aside: the next warm start (every feature vertex under its group's label).
        self.assignment = dict(
            zip(
                accounts + [index.features[f] for f in features_v.tolist()],
                labels[:n].tolist() + labels[n + group].tolist(),
            )
        )
        self.membership = labels[:n]
        self._sort_pairs()

    def _sort_pairs(self) -> None:
        """The (community, feature, owner) pairs in community order, each community's in pair order: the rows
        sorted by community, each row's pairs (contiguous, owners ascend) kept together; the order a stable
        sort of the pairs by community gives, without sorting the pairs."""
        rows = np.argsort(self.membership, kind="stable")
        counts = np.bincount(self.owners, minlength=len(self.membership))
        starts = np.cumsum(counts) - counts
        sizes = counts[rows]
        order = np.repeat(starts[rows] - (np.cumsum(sizes) - sizes), sizes) + np.arange(len(self.owners))
        self._pair_comm = self.membership[self.owners[order]]
        self._pair_fid = self.fids[order]
        self._pair_owner = self.owners[order]

    def join(self, communities: Sequence[Sequence[int]]) -> None:
        """Merge each set of communities (labels) into one, under its first label."""
        for labels in communities:
            self.membership[np.isin(self.membership, labels)] = labels[0]
        self._sort_pairs()

    def groups(self) -> list[np.ndarray]:
        """Communities with at least MIN_SIZE accounts (row indices), biggest first, ties by first row."""
        order = np.argsort(self.membership, kind="stable")
        labels = self.membership[order]
        cuts = np.flatnonzero(np.diff(labels)) + 1
        groups = [g for g in np.split(order, cuts) if len(g) >= MIN_SIZE]
        groups.sort(key=lambda g: (-len(g), int(g.min())))
        return groups

    def shared(self, community: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(feature ids, members holding each, owner-row of each (fid, member) pair) in a community."""
        lo, hi = np.searchsorted(self._pair_comm, [community, community + 1])
        fids, counts = np.unique(self._pair_fid[lo:hi], return_counts=True)
        return fids, counts, np.column_stack([self._pair_owner[lo:hi], self._pair_fid[lo:hi]])


def individually_suspicious(own: np.ndarray) -> np.ndarray:
    """Which accounts are individually more likely extractors than not (own log-odds >= 0): rare among ordinary
    accounts (a few percent). `replication` counts them; `tied` asks a link to reach one of them."""
    out: np.ndarray = own >= 0.0
    return out


def replication(own: np.ndarray) -> tuple[float, int]:
    """(evidence, count) from how many members are individually suspicious (`individually_suspicious`).

    Such accounts are rare among ordinary ones, so many of them linked in one community are unlikely by chance.
    Linked accounts are not independent, so the evidence grows only with the logarithm of their number:
    REPLICATION * ln(k), capped.
    """
    k = int(individually_suspicious(own).sum())
    return (min(REPLICATION_CAP, REPLICATION * math.log(k)) if k >= MIN_SIZE else 0.0), k


def judge(
    group: np.ndarray,
    fids: np.ndarray,
    counts: np.ndarray,
    index: FeatureIndex,
    signals: Sequence[Signal],
    offsets: Sequence[int],
    pooled: np.ndarray,
    own: np.ndarray | None = None,
) -> tuple[float, list[str]]:
    """A community's log-odds as one pooled account plus coordination evidence, with reasons."""
    m = len(group)
    scored: list[tuple[float, str]] = []
    values = []
    for signal, start in zip(signals, offsets):
        part = pooled[start : start + signal.summary_size].tolist()
        e = signal.pooled_evidence(part, m)
        values.append(e)
        if e >= 0.25:
            scored.append((e, f"{signal.explain_pooled(part, m)} [+{e:.1f}]"))
    total = combine(values, [s.group for s in signals])
    top: dict[str, tuple[int, int]] = {}  # kind -> (count, fid): most shared, then the smallest order key
    codes = index.codes(fids)
    by_key = np.argsort(index.keys(fids), kind="stable")  # argmax's first maximum: the smallest key
    for code in np.unique(codes).tolist():
        at = by_key[codes[by_key] == code]
        best = int(at[np.argmax(counts[at])])
        top[_KINDS[code]] = (int(counts[best]), int(fids[best]))
    coordination, shares = 0.0, []
    for kind, (count, fid) in sorted(top.items()):
        weight = COORD_WEIGHTS.get(kind, 0.0)
        share = count / m
        if weight and count >= 2 and share >= COORD_MIN_SHARE:
            coordination += weight * share
            shares.append(f"{share:.0%} share {index.name(fid)}")
    coordination = min(COORD_CAP, coordination * _size_factor(m))
    replicated, k = replication(own) if own is not None else (0.0, 0)
    total += coordination + replicated
    reasons = [f"{m} linked accounts" + (f" ({', '.join(shares)})" if shares else "") + f" [+{coordination:.1f}]"]
    if replicated:
        reasons.append(f"{k} of them individually suspicious [+{replicated:.1f}]")
    reasons += [text for _, text in sorted(scored, key=lambda t: -t[0])[:4]]
    return total, reasons


def binding(fids: np.ndarray, counts: np.ndarray, index: FeatureIndex, size: int) -> np.ndarray:
    """The binding features (BINDING_KINDS: network, user agent + network, card, system prompt) that a MAJORITY
    of a community's `size` members hold, of its features `fids` held by `counts` members each."""
    held: np.ndarray = fids[_KIND_BINDING[index.codes(fids)] & (counts >= MAJORITY * size)]
    return held


def tied(
    fids: np.ndarray,
    counts: np.ndarray,
    pairs: np.ndarray,
    graph: _Graph,
    index: FeatureIndex,
    size: int,
    core: np.ndarray | None = None,
) -> np.ndarray:
    """Members a community may lift (row indices): those tied to it by links of at least TIE_KINDS kinds,
    one of them content (a popular prompt phrasing alone is shared by chance; the same phrasing sent from
    the campaign's proxy network, or with its system prompt, is not). An exact template and a
    near-duplicate of the same sentence are one phrasing: they count as one kind.

    A thin network shares nothing but its phrasing: no network, card or system prompt is held by most of
    its members (BINDING_KINDS, MAJORITY). In such a community a member that shares both an exact template
    and a near-duplicate phrasing with it is tied too; where most members do share infrastructure, an
    account without it is an outsider that writes like them, and the rule above applies.

    A content or payment link counts when at least max(2, TIE_SHARE * size) members hold it and at least
    LINK_PURITY of its holders are members; a network link (net, uanet) when that many members hold it.

    Given `core` (by row: the accounts `individually_suspicious` finds), a link ties a member only where
    another suspicious member holds it too. `run` passes it where the community's judgement rests on such
    members (at least MIN_SIZE of them): a link none of them holds is some other group's.
    Leiden may place a small team beside a campaign (five colleagues on one card and one office network, issue
    19's run A at seed 1); the team's card and network tied its student, who asks for the steps, to the
    campaign's judgement, and he was flagged. A network judged at its first job, before any member stands out
    alone, is judged on its pooled behaviour, and its links tie as before."""
    shared = counts >= max(2.0, TIE_SHARE * size)
    specific = shared & (counts >= LINK_PURITY * graph.df[fids])
    codes = index.codes(fids)
    bits = _KIND_TIE_BIT[codes]
    bits[~(specific | (shared & ~graph.content[fids]))] = 0  # links that tie nobody
    bound = len(binding(fids, counts, index, size)) > 0
    # Each member's tying kinds as a bit mask, OR-ed over the pairs it holds (pairs are (member, feature id)).
    at = np.searchsorted(fids, pairs[:, 1])
    pair_bits = bits[at]
    if core is not None:
        vouched = core[pairs[:, 0]]
        others = np.bincount(at[vouched], minlength=len(fids))[at] - vouched  # suspicious co-holders of the link
        pair_bits[others < 1] = 0
    holding = pair_bits > 0
    if not holding.any():
        return np.zeros(0, dtype=np.int64)
    owners, pair_bits = pairs[holding, 0], pair_bits[holding]
    order = np.argsort(owners, kind="stable")
    owners, pair_bits = owners[order], pair_bits[order]
    starts = np.flatnonzero(np.r_[True, owners[1:] != owners[:-1]])
    members, held = owners[starts], np.bitwise_or.reduceat(pair_bits, starts)
    phrasing = held & _PHRASING_BITS
    merged = (held & ~_PHRASING_BITS) | np.where(phrasing > 0, _TIE_BIT["tpl"], 0)
    two_kinds = (np.bitwise_count(merged) >= TIE_KINDS) & ((merged & _CONTENT_BITS) > 0)
    both_phrasings = (phrasing == _PHRASING_BITS) & (not bound)
    tied_members: np.ndarray = members[two_kinds | both_phrasings]
    return tied_members


class _Judged(NamedTuple):
    fids: np.ndarray  # the features the community's members hold, ...
    counts: np.ndarray  # ... how many members hold each, ...
    pairs: np.ndarray  # ... and the (member row, feature id) pairs
    pooled: np.ndarray
    logit: float
    reasons: list[str]


def joins(graph: _Graph, index: FeatureIndex, suspicious: Mapping[int, int]) -> list[list[int]]:
    """Suspicious communities (label -> size) to judge as one: those joined, directly or through each other,
    by a binding feature (BINDING_KINDS) that a MAJORITY of each one's members hold.

    Modularity may split one network into several communities (the lab's bulk campaign, which rotates eight
    prompt templates, into six or seven), each under LIFT_MIN_SIZE and so unable to lift anyone, while all of
    them send from the same proxy network. Joining only communities already judged suspicious leaves people
    behind a shared NAT where they were: a corporate community pools to ordinary behaviour and is never
    suspicious, and no campaign is diluted with them."""
    labels = sorted(suspicious)
    edges = []
    features: dict[int, int] = {}  # binding feature id -> its vertex, after the communities'
    for c, label in enumerate(labels):
        fids, counts, _ = graph.shared(label)
        for f in binding(fids, counts, index, suspicious[label]).tolist():
            edges.append((c, features.setdefault(f, len(labels) + len(features))))
    components = igraph.Graph(n=len(labels) + len(features), edges=edges).connected_components()
    together = ([labels[v] for v in part if v < len(labels)] for part in components)
    return [part for part in together if len(part) > 1]


def run(
    rows: Sequence[AccountRow],
    index: FeatureIndex,
    signals: Sequence[Signal],
    threshold_logit: float,
    now: float,
    seed: int = 0,
    previous: Mapping[object, int] | None = None,
    standing: Mapping[str, float] | None = None,
) -> CampaignResult:
    """The campaign job over a snapshot of account rows (pure: safe to run on a worker thread).

    `previous` is the last result's `assignment` (vertex -> community), to warm-start Leiden; `standing` its lifts
    (`standing_of`): a community of which at least MAJORITY are accounts it lifted is judged at least at the
    median of their campaigns' log-odds.
    """
    result = CampaignResult(now=now, considered=[r.account for r in rows], campaigns=[], lifts={}, signatures={})
    if len(rows) < MIN_SIZE:
        return result
    graph = _Graph(rows, index, seed, previous)
    result.assignment = graph.assignment
    offsets = offsets_of(signals)
    width = offsets[-1] + signals[-1].summary_size if signals else 0
    # One concatenation, reshaped: np.stack handles each row as an array of its own (15 against 38 ms at 68,000 rows).
    summaries = (
        np.concatenate([r.summary for r in rows]).reshape(len(rows), width) if width else np.zeros((len(rows), 0))
    )
    volumes = np.maximum(np.array([r.volume for r in rows], dtype=np.float64), 1e-9)
    facts, traits = columns(signals, "per_account"), columns(signals, "rare_trait")
    own_all = np.array([r.own for r in rows])
    core = individually_suspicious(own_all)
    judged: dict[bytes, _Judged | None] = {}  # members -> judgement (None: none could be lifted, not judged)

    def assess(group: np.ndarray) -> _Judged | None:
        key = group.tobytes()
        if key not in judged:
            judged[key] = None
            if own_all[group].max() + MAX_LIFT >= threshold_logit:  # else no member could be lifted over it
                fids, counts, pairs = graph.shared(int(graph.membership[group[0]]))
                pooled = pool(summaries[group], volumes[group], facts, traits)
                logit, reasons = judge(group, fids, counts, index, signals, offsets, pooled, own_all[group])
                if standing:
                    held = [standing[a] for a in (rows[i].account for i in group.tolist()) if a in standing]
                    if len(held) >= MAJORITY * len(group) and (carried := float(np.median(held))) > logit:
                        logit = carried
                        reasons = [
                            *reasons,
                            f"{len(held)} of its {len(group)} accounts were lifted by the last job's campaign"
                            f" [{carried:+.1f}]",
                        ]
                judged[key] = _Judged(fids, counts, pairs, pooled, logit, reasons)
        return judged[key]

    groups = graph.groups()
    suspicious = {
        int(graph.membership[g[0]]): len(g)
        for g in groups
        if (j := assess(g)) is not None and j.logit >= threshold_logit
    }
    if together := joins(graph, index, suspicious):
        graph.join(together)
        groups = graph.groups()
    used: set[str] = set()
    for group in groups:
        j = assess(group)
        if j is None or j.logit < threshold_logit + LIFT_MARGIN or len(group) < LIFT_MIN_SIZE:
            continue
        fids, counts, logit = j.fids, j.counts, j.logit
        pooled_list = j.pooled.tolist()
        candidates = tied(
            fids, counts, j.pairs, graph, index, len(group), core if core[group].sum() >= MIN_SIZE else None
        )
        if len(candidates) < MIN_SIZE:
            continue
        own = np.array([rows[i].own for i in candidates.tolist()])
        ok = (own >= threshold_logit) | belongs_many(signals, offsets, summaries[candidates], pooled_list)
        chosen = candidates[ok]
        lifted = chosen.tolist()
        if len(lifted) < MIN_SIZE:
            continue
        cid = _campaign_id(fids, counts, index, used)
        bound = binding(fids, counts, index, len(group))
        signature = _signature(j.pairs, bound, graph, index, chosen)
        accounts = sorted(rows[i].account for i in lifted)
        infra = frozenset(index.features[f] for f in bound.tolist() if index.kind(f) in INFRA_KINDS)
        result.campaigns.append(Campaign(cid, accounts, logit, j.reasons, signature, pooled_list, infra))
        reason = f"member of campaign {cid}: {len(accounts)} linked accounts judged together [{logit:+.1f}]"
        for i in lifted:
            result.lifts[rows[i].account] = (cid, logit, reason)
        for feature in signature:
            result.signatures.setdefault(feature, cid)
    return result


def _signature(
    pairs: np.ndarray, bound: np.ndarray, graph: _Graph, index: FeatureIndex, lifted: np.ndarray
) -> list[str]:
    """The campaign's signature: content features that at least SIGNATURE_MIN of its community's members hold
    (and, for a near-duplicate phrasing, TIE_SHARE of them), SIGNATURE_PURITY of whose holders are members, and
    that at least SIGNATURE_LIFTED of the members it lifts (`lifted`, row indices) hold. A big community holds
    small groups of people beside the network: a team's company card, sentences a few students share. Held by
    nobody else, such a feature looked specific to the campaign, and the next colleague or student who sent it
    was flagged; a feature that no lifted member holds says nothing about the campaign.

    Where most of the community shares binding infrastructure (`bound`: `binding`'s features), its accounts
    without any of it are counted neither as members nor as outside holders: they may be the network's
    members on other addresses, or people who write like it (as in `tied`).
    Leiden places people who ask what a campaign harvests beside it, and a campaign joined from several
    communities (`joins`) gathers more of them: counted as members, they make the harvested task's own
    sentences (a word problem's numbers-and-names template) look specific to the campaign, and the next
    person who asks such a problem would carry its signature."""
    df = graph.df
    if len(bound):
        kept = np.isin(pairs[:, 0], pairs[np.isin(pairs[:, 1], bound), 0])
        df = df - np.bincount(pairs[~kept, 1], minlength=len(df))  # neither members nor outside holders
        pairs = pairs[kept]
    fids, counts = np.unique(pairs[:, 1], return_counts=True)
    by_lifted = np.bincount(pairs[np.isin(pairs[:, 0], lifted), 1], minlength=len(df))
    broad = max(SIGNATURE_MIN, TIE_SHARE * len(np.unique(pairs[:, 0])))
    return sorted(
        index.name(f)
        for f, c in zip(fids.tolist(), counts.tolist())
        if graph.content[f]
        and c >= SIGNATURE_MIN
        and c >= SIGNATURE_PURITY * df[f]
        and by_lifted[f] >= SIGNATURE_LIFTED
        and (c >= broad or index.kind(f) != "near")
    )


def _campaign_id(fids: np.ndarray, counts: np.ndarray, index: FeatureIndex, used: set[str]) -> str:
    """A readable id derived from the community's most shared feature (stable across jobs). Ties go to the
    feature's name, not its id: ids follow the order rows were first seen, which differs between a replay
    and the shards' leader (rows arrive from partitions in whatever order), names do not."""
    top = fids[counts == counts.max()].tolist() if len(counts) else []
    best = min(map(index.name, top), default=None)  # of the most shared features, the first by name
    base = f"c-{zlib.crc32(best.encode()):08x}" if best else "c-00000000"
    cid, suffix = base, 2
    while cid in used:
        cid, suffix = f"{base}-{suffix}", suffix + 1
    used.add(cid)
    return cid
