"""Logit-level defenses: they act inside the local engine's sampling loop, on token probabilities.

base (interface + registry) · watermark (`logit_watermark`, generation side; its keyed function, entropy
gate and detection live in cuirass.marks.logit) · antidistill (`antidistill`: antidistillation sampling
against a proxy student). Only a local upstream runs them; for a remote upstream the gateway drops these
actions from what it carries out.
"""
