"""`logit_watermark`: a keyed green-list watermark applied while the local engine samples.

    scores[v] += delta   for every v with green(key, previous h tokens, v)        (keyed.py)

Kirchenbauer et al., 2023, "A Watermark for Large Language Models" (arXiv:2301.10226), the soft
red-list rule: the bias tilts sampling toward the green fraction gamma of the vocabulary without
forbidding anything, so a confident model still says what it must (a digit the answer needs keeps
its place when its logit lead exceeds delta), while high-entropy choices turn mostly green. Keys are
per cohort (keyring purpose "logit_watermark"), so a detection also says which cohort the text left
through. Detect with `cuirass.respond.logit.detect`.

Options (policy config, `options: {logit_watermark: {...}}`); detection must use the same ones:
    gamma: float = 0.25   # green fraction
    delta: float = 2.0    # logit bias on green tokens (higher: stronger and more visible)
    context: int = 2      # h, previous tokens seeding the green list
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cuirass.respond.base import DefenseContext
from cuirass.respond.logit.base import LogitDefense, register_logit
from cuirass.respond.logit.keyed import CONTEXT, DELTA, GAMMA, context_seed, green_list, threshold
from cuirass.upstream.base import LogitsProcessor


@register_logit
class LogitWatermark(LogitDefense):
    name = "logit_watermark"

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.gamma = float(options.get("gamma", GAMMA))
        self.delta = float(options.get("delta", DELTA))
        self.context = int(options.get("context", CONTEXT))
        threshold(self.gamma)  # validates gamma
        if self.delta < 0 or self.context < 1:
            raise ValueError("logit_watermark needs delta >= 0 and context >= 1")

    def processor(self, ctx: DefenseContext, tokenizer: Any) -> LogitsProcessor:
        return GreenListProcessor(ctx.key, self.gamma, self.delta, self.context)


class GreenListProcessor:
    """Adds delta to the green logits of each step; positions with fewer than h previous tokens pass.
    Works on a batch too, so it can also be handed to transformers' `generate(logits_processor=[...])`."""

    def __init__(self, key: bytes, gamma: float, delta: float, context: int) -> None:
        self.key, self.gamma, self.delta, self.context = key, gamma, delta, context

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        if input_ids.shape[-1] < self.context:
            return scores
        width = scores.shape[-1]
        rows = [green_list(context_seed(self.key, ctx), width, self.gamma)
                for ctx in input_ids[:, -self.context:].tolist()]  # one row per sequence (HF generate batches)
        mask = torch.from_numpy(np.stack(rows)).to(scores.device)
        return scores + self.delta * mask.to(scores.dtype)
