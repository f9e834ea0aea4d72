"""The interface every logit-level defense implements, and the registry that names them.

A defense gives, per request, a logits processor: `(input_ids [1, L], scores [1, V]) -> scores`
(torch tensors, like transformers' LogitsProcessor). The policy picks the defense before it knows
which model will answer, so the engine builds the processor with its own tokenizer. Modules here
must not import torch at import time: the gateway runs without the engine extra.
"""

from __future__ import annotations

import abc
from typing import Any

from cuirass.actions import LOGIT_ACTIONS
from cuirass.registry import Registry
from cuirass.respond.base import Defense, DefenseContext
from cuirass.upstream.base import LogitsProcessor


class LogitDefense(Defense):
    """Subclasses set `name` and register with `@register_logit`; options come from the policy config."""

    @abc.abstractmethod
    def processor(self, ctx: DefenseContext, tokenizer: Any) -> LogitsProcessor:
        """A fresh processor for one generation, keyed by ctx.key (the cohort's key for this defense)."""


LOGIT_DEFENSES: Registry[type[LogitDefense]] = Registry("logit defense", LOGIT_ACTIONS)
register_logit = LOGIT_DEFENSES.register  # class decorator: make a logit defense available by its name
