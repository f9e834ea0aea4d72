"""Logit-level defenses: they act inside the local engine's sampling loop, on token probabilities.

base (interface + registry) · keyed (the one keyed function of the logit watermark) · watermark
(`logit_watermark`, generation side) · entropy (the gate both sides share) · detect (its exact
p-value) · antidistill (`antidistill`: antidistillation sampling against a proxy student). Only a local upstream runs them;
for a remote upstream the gateway drops these actions from what it carries out.
"""
