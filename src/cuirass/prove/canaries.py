"""Canary probing: does the suspect know the facts we planted, more often than facts we never planted?

The canary defense (cuirass.respond.defenses.canary) wove synthetic facts into some answers and the
ledger recorded each planting. Decoys are drawn from the same keyed generator (indices from
DECOY_BASE on) and never planted, so planted and decoy facts are exchangeable draws of one
distribution. Each fact's probe question is put to the suspect and the answer counts as a recall when
it contains every distinctive word of the expected answer (`recalled`). For each (cohort, epoch) with
plantings, and for all of them pooled, the 2x2 table

                 recalled   not recalled
    planted         a          n1 - a
    decoy           b          n2 - b

is tested with Fisher's exact test, one-sided (planted recall greater). Under H0 (the suspect never
learnt our canaries) its answers do not depend on which facts were planted, so given the total number
of recalls K = a + b the planted count is hypergeometric:

    p = P(A >= a) = hypergeom.sf(a - 1, n1 + n2, K, n1)                    (exact; = scipy fisher_exact)

Decoys are pooled over every tested cohort, one per planted fact, so every per-cohort test compares
with the same, larger reference. A hit on decoys measures guessing (e.g. a model that names a
plausible river); the test is valid whatever the matching rule, because both arms use the same one.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence
from typing import Any

from scipy.stats import hypergeom

from cuirass.marks.canary import CanaryFact, CanaryGenerator
from cuirass.marks.canary_ledger import CanaryRecord
from cuirass.marks.epochs import Epoch

METHOD = (
    "Canary probing. The ledger lists the synthetic facts the canary defense planted in answers, per "
    "cohort and key epoch; the same keyed generator gives as many never-planted decoy facts. Each fact's "
    "probe question is put to the suspect (temperature 0); an answer recalls the fact when it contains "
    "every distinctive word of the expected answer. Planted recall is compared with decoy recall by "
    "Fisher's exact test, one-sided: under H0 (the suspect never learnt our canaries) planted and decoy "
    "facts are exchangeable, so the planted recall count given the total is hypergeometric, exactly."
)

_WORD = re.compile(r"\d+(?:\.\d+)?|[^\W\d_]+")
_COMMON = frozenset({"a", "an", "the", "of", "in", "on", "used", "river", "is", "and"})

Ask = Callable[[list[str]], list[str | None]]  # questions -> answers (None: the question failed)


def distinctive(answer: str) -> set[str]:
    """The words an answer must contain to count as recalling the fact (case-insensitive)."""
    return {w for w in _WORD.findall(answer.lower()) if w not in _COMMON}


def recalled(expected: str, said: str | None) -> bool:
    """Whether `said` contains every distinctive word of `expected`."""
    if not said:
        return False
    need = distinctive(expected)
    return bool(need) and need <= set(_WORD.findall(said.lower()))


def fisher_greater(a: int, n1: int, b: int, n2: int) -> float:
    """One-sided Fisher exact p-value: P(A >= a) for A ~ Hypergeom(N = n1 + n2, K = a + b, n1)."""
    if n1 == 0 or a == 0:
        return 1.0
    return float(min(1.0, hypergeom.sf(a - 1, n1 + n2, a + b, n1)))


@dataclasses.dataclass(frozen=True, slots=True)
class Probe:
    fact: CanaryFact
    epoch: int
    planted: bool
    plantings: int  # responses it was planted in (0 for decoys)


def _epoch_of(ts: float, epochs: Sequence[Epoch]) -> int:
    for e in reversed(epochs):
        if e.started <= ts:
            return e.epoch
    return epochs[0].epoch


def probe_set(rows: Sequence[CanaryRecord], keyring: Any, epochs: Sequence[Epoch]) -> list[Probe]:
    """Every distinct planted fact (per cohort and epoch), then one decoy per planted fact."""
    planted: dict[tuple[str, int, str], list[CanaryRecord]] = {}
    for r in rows:
        planted.setdefault((r.cohort, _epoch_of(r.ts, epochs), r.canary_id), []).append(r)
    out: list[Probe] = []
    per_group: dict[tuple[str, int], int] = {}
    for (cohort, epoch, cid), recs in planted.items():
        r = recs[0]
        fact = CanaryFact(cid, cohort, r.kind, r.planted_text, r.probe, r.answer)
        out.append(Probe(fact, epoch, True, len(recs)))
        per_group[(cohort, epoch)] = per_group.get((cohort, epoch), 0) + 1
    for (cohort, epoch), n in per_group.items():
        gen = CanaryGenerator(keyring.key("canary", cohort, epoch), cohort)
        out.extend(Probe(f, epoch, False, 0) for f in gen.decoys(n))
    return out


def run(probes: Sequence[Probe], ask: Ask) -> list[dict[str, Any]]:
    """Ask every probe; one plain record per probe (what was asked, said, and whether it recalled)."""
    said = ask([p.fact.probe for p in probes])
    return [
        {
            "canary_id": p.fact.canary_id,
            "cohort": p.fact.cohort,
            "epoch": p.epoch,
            "planted": p.planted,
            "plantings": p.plantings,
            "probe": p.fact.probe,
            "expected": p.fact.answer,
            "answer": s,
            "recalled": recalled(p.fact.answer, s),
        }
        for p, s in zip(probes, said, strict=True)
    ]


def tests(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per (cohort, epoch) and pooled Fisher tests of planted against decoy recall (uncorrected p)."""
    decoys = [r for r in records if not r["planted"] and r["answer"] is not None]
    n2, b = len(decoys), sum(r["recalled"] for r in decoys)
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for r in records:
        if r["planted"] and r["answer"] is not None:
            groups.setdefault((r["cohort"], r["epoch"]), []).append(r)
    per = []
    for (cohort, epoch), rs in sorted(groups.items()):
        a = sum(r["recalled"] for r in rs)
        per.append(
            {
                "channel": "canary",
                "cohort": cohort,
                "epoch": epoch,
                "n_planted": len(rs),
                "planted_hits": a,
                "n_decoys": n2,
                "decoy_hits": b,
                "p_value": fisher_greater(a, len(rs), b, n2),
            }
        )
    planted = [r for g in groups.values() for r in g]
    a = sum(r["recalled"] for r in planted)
    pooled = {
        "n_planted": len(planted),
        "planted_hits": a,
        "n_decoys": n2,
        "decoy_hits": b,
        "planted_recall": a / len(planted) if planted else 0.0,
        "decoy_recall": b / n2 if n2 else 0.0,
        "p_value": fisher_greater(a, len(planted), b, n2),
    }
    return {"tests": per, "pooled": pooled}
