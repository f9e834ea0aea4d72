"""The token-level (logit) watermark's keyed primitives, shared by generation and detection.

keyed (the one keyed function: green lists per context) · entropy (the gate both sides share) · detect
(its exact p-value). The generation side is the `logit_watermark` defense (cuirass.respond.logit.watermark);
the audit side is the `token` channel (cuirass.prove.channels). No module here imports torch at import time.
"""
