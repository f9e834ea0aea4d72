"""The experimental conditions: who the attacker talks to, under which policy, and how it treats its data.

Every condition gets the same attacker budget (accounts, queries, problems, seeds); only the gateway's
behaviour and the attacker's post-processing differ:

- A        no Cuirass: the same gateway with the policy off and detection off, i.e. the bare engine;
- B        the default policy with online detection (`cuirass detect watch` beside `serve`);
- C:<name> one defense alone on every campaign response (detection off, forced per org);
- D        B's harvest, then an answer-filtering attacker keeps only examples whose final answer a
           checker finds right (the distillers of the threat model do this);
- E        B's policy against a slow, stealthy campaign (many accounts, few queries each, benign mixing,
           paraphrased prompts).

Conditions that can share a gateway do: A and every C run in one `plain` gateway (policy forced per org,
so benign users there are exactly condition A's), B and D share the `defended` gateway's harvest.
"""

from __future__ import annotations

import dataclasses
from typing import Any

DEFENSES_ALONE = (
    "logit_watermark",
    "watermark",
    "strip_reasoning",
    "decoy",
    "perturb",
    "antidistill",
    "canary",
    "signature",
)


@dataclasses.dataclass(frozen=True, slots=True)
class Condition:
    name: str  # "A", "B", "C:decoy", "D", "E"
    title: str
    gateway: str  # which gateway serves it: "plain", "defended" or "stealth"
    org: str  # the org of its campaign accounts
    actions: tuple[str, ...] = ()  # forced on every campaign response (plain gateway only)
    filter_answers: bool = False  # the attacker discards examples whose final answer is wrong
    stealth: bool = False
    harvest_of: str | None = None  # reuse another condition's harvest (D reuses B's)

    @property
    def slug(self) -> str:
        return self.name.replace(":", "-")


def available_defenses() -> set[str]:
    """Names of the text and logit defenses registered in this installation (plus the gateway's decoy)."""
    from cuirass.actions import GATEWAY_ACTIONS
    from cuirass.respond.base import DEFENSES
    from cuirass.respond.logit.base import LOGIT_DEFENSES
    from cuirass.respond.responder import load_defenses

    load_defenses()
    return set(DEFENSES) | set(LOGIT_DEFENSES) | set(GATEWAY_ACTIONS)


def build(names: tuple[str, ...]) -> tuple[list[Condition], dict[str, str]]:
    """The conditions named (e.g. ("A", "B", "C:decoy", "D", "E"), "C" for every defense alone);
    returns (conditions, skipped: name -> why)."""
    have = available_defenses()
    out: list[Condition] = []
    skipped: dict[str, str] = {}
    wanted: list[str] = []
    for n in names:
        wanted += [f"C:{d}" for d in DEFENSES_ALONE] if n == "C" else [n]
    if "D" in wanted and "B" not in wanted:
        wanted.insert(0, "B")  # D is B's harvest, filtered
    if "A" not in wanted:
        wanted.insert(0, "A")  # every value ratio is relative to A
    for n in dict.fromkeys(wanted):
        if n == "A":
            out.append(Condition("A", "no Cuirass (policy and detection off)", "plain", "cond-a"))
        elif n == "B":
            out.append(Condition("B", "default policy, detection on", "defended", "cond-b"))
        elif n == "D":
            out.append(
                Condition(
                    "D", "B + answer-filtering attacker", "defended", "cond-b", filter_answers=True, harvest_of="B"
                )
            )
        elif n == "E":
            out.append(Condition("E", "B vs a slow, stealthy campaign", "stealth", "cond-e", stealth=True))
        elif n.startswith("C:"):
            defense = n[2:]
            if defense not in DEFENSES_ALONE:
                raise ValueError(f"unknown defense {defense!r}; one of {', '.join(DEFENSES_ALONE)}")
            if defense not in have:
                skipped[n] = f"not available: no defense named {defense!r} is registered in this installation"
                continue
            out.append(
                Condition(n, f"{defense} on every campaign response", "plain", f"cond-c-{defense}", actions=(defense,))
            )
        else:
            raise ValueError(f"unknown condition {n!r}: A, B, C, C:<defense>, D or E")
    return out, skipped


def policy_for(gateway: str, conditions: list[Condition]) -> dict[str, Any]:
    """The policy section of one gateway's config.

    plain: nothing for anyone by default (condition A, and every benign user), and per campaign org of a
    C condition its one defense as the default action with no bands, so it applies to every response.
    defended / stealth: the shipped default policy, untouched.
    """
    if gateway != "plain":
        return {}
    orgs = {
        c.org: {"bands": [], "default_actions": list(c.actions)}
        for c in conditions
        if c.gateway == "plain" and c.actions
    }
    return {"bands": [], "default_actions": [], "orgs": orgs}
