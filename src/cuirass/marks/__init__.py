"""Marks: the keyed primitives that both the marking side (respond/) and the auditing side (prove/) use.

Each mark is defined once here, so generation and detection share the same keyed function:

- text/             the lexical watermark: choice points, the keyed green variant, embedding, exact detection
- logit/            the token-level watermark: keyed green lists, the entropy gate, exact detection
- canary.py         canary facts derived from a cohort key (planted ones and never-planted decoys)
- canary_ledger.py  which canary was planted for which cohort and account (SQL)

respond/defenses/watermark.py, respond/logit/watermark.py and respond/defenses/canary.py apply them;
prove/channels.py and prove/canaries.py test a suspect for them.
"""
