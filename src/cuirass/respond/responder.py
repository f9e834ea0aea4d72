"""From a request to a plan: the policy's decision, the cohort, and the text rewrite to carry out."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import hmac
from collections.abc import Callable
from typing import Any

from cuirass.actions import GATEWAY_ACTIONS
from cuirass.config import ConfigError, PolicyConfig
from cuirass.keyring import Keyring
from cuirass.respond.base import DEFENSES, DefenseContext, TextDefense
from cuirass.respond.logit.base import LOGIT_DEFENSES, LogitDefense
from cuirass.respond.policy import Decision, Policy
from cuirass.upstream.base import ProcessorFactory
from cuirass.verdicts.model import AccountVerdict


@dataclasses.dataclass(frozen=True, slots=True)
class Plan:
    decision: Decision
    actions: tuple[str, ...]  # what is carried out, in order (a throttle outside its fraction is dropped)
    cohort: str
    rewrite: Callable[[str], str] | None  # None: the text passes untouched
    strip_fields: bool  # drop reasoning_content / reasoning fields
    decoy: bool
    throttle: bool
    block: bool
    processors: tuple[ProcessorFactory, ...] = ()  # logit-level defenses, for an upstream that runs them
    max_chars: int = 100_000  # longest answer text rewritten; longer is cut (policy.rewrite_max_chars)


def load_defenses() -> None:
    """Import the defense modules so they register themselves."""
    import importlib
    import pkgutil

    import cuirass.respond.defenses as pkg
    import cuirass.respond.logit as logit

    for mod in pkgutil.iter_modules(pkg.__path__):
        importlib.import_module(f"{pkg.__name__}.{mod.name}")
    for mod in pkgutil.iter_modules(logit.__path__):
        importlib.import_module(f"{logit.__name__}.{mod.name}")


class Responder:
    def __init__(self, config: PolicyConfig, keyring: Keyring) -> None:
        load_defenses()
        self.policy = Policy(config)
        self.keyring = keyring
        self.config = config
        self.epoch = 0  # the key epoch in force; the gateway refreshes it from the epoch store
        used = {a for b in config.bands for a in b.actions} | set(config.default_actions)
        for o in (*config.models.values(), *config.orgs.values()):
            used |= {a for b in (o.bands or []) for a in b.actions} | set(o.default_actions or [])
        missing = sorted(a for a in used if a not in GATEWAY_ACTIONS and a not in DEFENSES and a not in LOGIT_DEFENSES)
        if missing:
            raise ConfigError(f"the policy uses actions with no implementation: {', '.join(missing)}")
        self.defenses: dict[str, TextDefense] = {
            name: DEFENSES[name](**config.options.get(name, {})) for name in sorted(used) if name in DEFENSES
        }
        self.logit_defenses: dict[str, LogitDefense] = {
            name: LOGIT_DEFENSES[name](**config.options.get(name, {}))
            for name in sorted(used)
            if name in LOGIT_DEFENSES
        }

    def cohort(self, account: str, verdict: AccountVerdict | None, honeypot: bool) -> str:
        """Regular cohort by keyed hash; suspects go to honeypot cohorts (a whole campaign to the same one)."""
        if not honeypot:
            return self.keyring.cohort_of(account)
        group = verdict.campaign if verdict is not None and verdict.campaign else account
        h = hmac.new(self.keyring.key("honeypot", "assign"), group.encode(), hashlib.sha256).digest()
        return f"h{int.from_bytes(h[:8], 'big') % self.config.n_honeypot_cohorts:03d}"

    def keyed_fraction(self, action: str, account: str, prompt: str) -> float:
        """A deterministic number in [0, 1) for (action, account, prompt): repeats get the same treatment."""
        h = hmac.new(self.keyring.key(action, "fraction"), f"{account}\x00{prompt}".encode(), hashlib.sha256)
        return int.from_bytes(h.digest()[:8], "big") / 2**64

    def decide(
        self, *, account: str, org: str | None, allowlisted: bool, model: str, verdict: AccountVerdict | None
    ) -> Decision:
        """The policy's decision (cheap: done for every request)."""
        return self.policy.decide(account, org, model, allowlisted, verdict)

    def plan(
        self,
        decision: Decision,
        *,
        account: str,
        model: str,
        endpoint: str,
        prompt: str,
        verdict: AccountVerdict | None,
    ) -> Plan:
        """How to carry out a decision that has actions (only flagged or defaulted traffic gets here)."""
        cohort = self.cohort(account, verdict, decision.honeypot)
        acts = decision.actions
        text_steps = [a for a in acts if a in self.defenses]
        rewrite = None
        if text_steps:
            steps = [
                (
                    self.defenses[a],
                    DefenseContext(
                        account=account,
                        cohort=cohort,
                        prompt=prompt,
                        endpoint=endpoint,
                        model=model,
                        key=self.keyring.key(a, cohort, self.epoch),
                    ),
                )
                for a in text_steps
            ]

            def rewrite(text: str) -> str:
                for defense, ctx in steps:
                    text = defense.transform(text, ctx)
                return text

        processors = tuple(
            functools.partial(
                self.logit_defenses[a].processor,
                DefenseContext(
                    account=account,
                    cohort=cohort,
                    prompt=prompt,
                    endpoint=endpoint,
                    model=model,
                    key=self.keyring.key(a, cohort, self.epoch),
                ),
            )
            for a in acts
            if a in self.logit_defenses
        )
        throttle = "throttle" in acts and self.keyed_fraction("throttle", account, prompt) < float(
            self.option("throttle", "fraction", 1.0)
        )
        carried = tuple(a for a in acts if a != "throttle" or throttle)
        return Plan(
            decision,
            carried,
            cohort,
            rewrite,
            "strip_reasoning" in acts,
            "decoy" in acts,
            throttle,
            "block" in acts,
            processors,
            self.config.rewrite_max_chars,
        )

    def option(self, action: str, name: str, default: Any) -> Any:
        return self.config.options.get(action, {}).get(name, default)
