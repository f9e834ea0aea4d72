"""Why an account scores what it does, and what ties a campaign's members: plain functions of their events.

`account_history` replays one account's events through a fresh `Scorer` (the same signals the detector
runs) and keeps, per request, the account's own score, and per signal the requests behind its reason: for a
rate signal ("the share of requests that show X") the requests that show X; for the others, those after
which its evidence was worth a reason and did not fall (raised, or held at its cap against decay). `campaign_links` replays the members' events the same way and
lists the linking features (`Signal.links`) that two or more members share, grouped into the kinds an
analyst reads (shared phrasing, network, card, timing).

Both see only the events given, so the score is the account's *own* log-odds (no campaign lift, and
context such as when a model was first seen comes from these events alone); the stored verdict remains
the detector's word.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from cuirass.detect.digest import digest
from cuirass.detect.scoring import REASON_MIN, Scorer
from cuirass.detect.signals import build
from cuirass.detect.signals.base import RateSignal
from cuirass.events.record import Event

REQUESTS_PER_REASON = 50  # newest requests kept per reason
LINKS_PER_KIND = 20  # shared features listed per kind
EDGES_MAX = 2000  # member pairs listed (a feature shared by n members ties n(n-1)/2 pairs)

# linking feature kind (Signal.links) -> what an analyst calls it
LINK_KINDS: dict[str, str] = {
    "tpl": "phrasing",
    "sys": "phrasing",
    "near": "phrasing",
    "net": "network",
    "uanet": "network",
    "pay": "card",
    "created": "timing",
    "start": "timing",
    "pivot": "timing",
    "topic": "focus",
}
NO_EDGE = frozenset({"focus"})  # a topic links half the users of a model: listed, not drawn as a tie


def _events(rows: Iterable[Mapping[str, Any]]) -> list[Event]:
    out = []
    for row in rows:
        try:
            out.append(Event.from_dict(dict(row)))
        except ValueError:
            continue  # a record that is not an event tells nothing about the account
    return sorted(out, key=lambda e: e.ts)


def account_history(rows: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The account's own score after each of its requests, and each reason with the requests behind it.

    Returns {"scores": [{"ts", "request_id", "score"}], "reasons": [{"signal", "reason", "evidence",
    "requests"}]} with reasons strongest first (those under REASON_MIN left out, as in `Scorer.reasons`).
    """
    scorer = Scorer(build())
    behind: dict[int, list[str]] = defaultdict(list)
    scores: list[dict[str, Any]] = []
    state = None
    for event in _events(rows):
        try:
            d = digest(event)
        except Exception:  # noqa: BLE001 - one malformed record must not stop the explanation (as replay)
            continue
        before = list(state.evidence) if state is not None else [0.0] * len(scorer.signals)
        state = scorer.observe(d)
        for i, (signal, old, new) in enumerate(zip(scorer.signals, before, state.evidence)):
            if isinstance(signal, RateSignal):
                shows = new >= REASON_MIN and bool(signal.hit(d))  # the request shows the feature counted
            else:
                shows = new >= REASON_MIN and new >= old  # raised it, or held it up (at a cap, against decay)
            if shows:
                ids = behind[i]
                ids.append(event.request_id)
                if len(ids) > REQUESTS_PER_REASON:
                    del ids[0]
        scores.append({"ts": event.ts, "request_id": event.request_id, "score": state.score})
    reasons = []
    if state is not None:
        for i in sorted(range(len(scorer.signals)), key=lambda i: -state.evidence[i]):
            e = state.evidence[i]
            if e < REASON_MIN:
                break
            signal = scorer.signals[i]
            reasons.append(
                {
                    "signal": signal.name,
                    "reason": signal.explain(state.states[i]),
                    "evidence": e,
                    "requests": behind.get(i, []),
                }
            )
    return {"scores": scores, "reasons": reasons}


def campaign_links(rows: Iterable[Mapping[str, Any]], members: Iterable[str]) -> dict[str, Any]:
    """What ties the members: every linking feature two or more of them share, with who shares it.

    Returns {"links": [{"kind", "feature", "value", "accounts"}], "edges": [{"a", "b", "kinds"}],
    "kinds": {kind: number of shared features}}; at most EDGES_MAX pairs; features of one kind are listed most shared first.
    """
    wanted = set(members)
    scorer = Scorer(build())
    for event in _events(rows):
        if event.account not in wanted:
            continue
        try:
            scorer.observe(digest(event))
        except Exception:  # noqa: BLE001 - as above
            continue
    holders: dict[tuple[str, str], set[str]] = defaultdict(set)
    for state in scorer:
        for feature, value in scorer.links(state):
            holders[(feature, str(value))].add(state.account)
    shared = [(f, v, sorted(accs)) for (f, v), accs in holders.items() if len(accs) >= 2]
    shared.sort(key=lambda s: (LINK_KINDS.get(s[0], "other"), -len(s[2]), s[0], s[1]))
    kinds: dict[str, int] = defaultdict(int)
    links = []
    edges: dict[tuple[str, str], set[str]] = defaultdict(set)
    for feature, value, accs in shared:
        kind = LINK_KINDS.get(feature, "other")
        kinds[kind] += 1
        if kinds[kind] <= LINKS_PER_KIND:
            links.append({"kind": kind, "feature": feature, "value": value, "accounts": accs})
        for i, a in enumerate(accs if kind not in NO_EDGE else ()):
            for b in accs[i + 1 :]:
                if (a, b) in edges or len(edges) < EDGES_MAX:
                    edges[(a, b)].add(kind)
    return {
        "links": links,
        "edges": [{"a": a, "b": b, "kinds": sorted(k)} for (a, b), k in sorted(edges.items())],
        "kinds": dict(kinds),
    }
