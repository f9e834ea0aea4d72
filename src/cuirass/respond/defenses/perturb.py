"""`perturb`: subtle, answer-preserving inconsistencies in worked solutions, code and prose.

The response's content type is detected (math, code, prose) and one variant of that type's perturber is
applied. Which variant, and where, is drawn from HMAC(cohort key, prompt): a repeated prompt gets the same
perturbation, other cohorts get other ones. If the drawn variant does not fit the text (a one-step
solution cannot lose a step), the next one in the same keyed order is tried.

Options (policy `options.perturb`):
    variants:       variant names to draw from (default: all); one name forces that variant
    variant:        shorthand for a single forced variant
    content_types:  which types to perturb (default: math, code, prose); others pass unchanged
    edits:          how many perturbations to stack (default 1)
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from typing import Any

from cuirass.respond.base import DefenseContext, TextDefense, register
from cuirass.respond.perturb.base import Perturber, keyed_rng
from cuirass.respond.perturb.code import CodePerturber
from cuirass.respond.perturb.detect import CONTENT_TYPES, content_type
from cuirass.respond.perturb.math import MathPerturber
from cuirass.respond.perturb.prose import ProsePerturber

log = logging.getLogger("cuirass.respond.perturb")

PERTURBERS: dict[str, Perturber] = {p.content_type: p for p in (MathPerturber(), CodePerturber(), ProsePerturber())}
VARIANTS: dict[str, str] = {v: p.content_type for p in PERTURBERS.values() for v in p.variants}


@dataclasses.dataclass(frozen=True, slots=True)
class Perturbation:
    text: str
    content_type: str
    applied: tuple[str, ...]  # variants applied, in order; empty when the text passed unchanged


@register
class Perturb(TextDefense):
    name = "perturb"

    def __init__(
        self,
        *,
        variants: Sequence[str] | None = None,
        variant: str | None = None,
        content_types: Sequence[str] | None = None,
        edits: int = 1,
        **options: Any,
    ) -> None:
        super().__init__(variants=variants, variant=variant, content_types=content_types, edits=edits, **options)
        chosen = [variant] if variant else list(variants) if variants else list(VARIANTS)
        unknown = [v for v in chosen if v not in VARIANTS]
        if unknown:
            raise ValueError(f"perturb: unknown variants {unknown}; known: {sorted(VARIANTS)}")
        types = list(content_types) if content_types else list(CONTENT_TYPES)
        if bad := [t for t in types if t not in CONTENT_TYPES]:
            raise ValueError(f"perturb: unknown content types {bad}; known: {list(CONTENT_TYPES)}")
        if edits < 1:
            raise ValueError("perturb: edits must be >= 1")
        self.variants = tuple(chosen)
        self.content_types = tuple(types)
        self.edits = int(edits)

    def transform(self, text: str, ctx: DefenseContext) -> str:
        return self.perturb(text, ctx.key, ctx.prompt).text

    def perturb(self, text: str, key: bytes, prompt: str) -> Perturbation:
        """The perturbed text with what was done; the original text whenever nothing fits or anything fails."""
        try:
            return self._perturb(text, key, prompt)
        except Exception:  # a defense must never break a response
            log.exception("perturb failed; passing the text unchanged")
            return Perturbation(text, "unknown", ())

    def _perturb(self, text: str, key: bytes, prompt: str) -> Perturbation:
        kind = content_type(text)
        perturber = PERTURBERS[kind]
        allowed = [v for v in perturber.variants if v in self.variants]
        if kind not in self.content_types or not allowed or not text.strip():
            return Perturbation(text, kind, ())
        order_rng = keyed_rng(key, "perturb", prompt)
        current, applied = text, []
        for n in range(self.edits):
            order = list(allowed)
            order_rng.shuffle(order)
            for name in order:
                out = perturber.apply(current, name, keyed_rng(key, "perturb", prompt, name, str(n)))
                if out is not None and out != current and perturber.preserves(text, out):
                    current = out
                    applied.append(name)
                    break
        return Perturbation(current, kind, tuple(applied))
