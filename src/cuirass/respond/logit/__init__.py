"""Logit-level defenses: they act inside the local engine's sampling loop, on token probabilities.

base (interface + registry) · keyed (the one keyed function of the logit watermark) · watermark
(`logit_watermark`, generation side) · detect (its exact p-value). Only a local upstream runs them;
for a remote upstream the gateway drops these actions from what it carries out.
"""
