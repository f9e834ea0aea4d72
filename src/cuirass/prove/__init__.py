"""Prove: evidence that a suspect model learned from our outputs, and through which accounts.

- epochs.py      key epochs and rotation (keys themselves are derived: keyring.py)
- keys.py        the (purpose, cohort, epoch) keys an audit tests, and their public commitments
- cohorts.py     who was in which cohort when (from the event log); cohort moves; checkpoints
- corpus.py      reading and hashing a suspect corpus
- channels.py    watermark channels (text level; token level when the local engine provides it), by name
- correction.py  Holm-Bonferroni across all keys; KS uniformity check of a control
- texts.py       `cuirass audit texts`: pooled exact tests -> corrected -> implicated cohorts -> accounts
- probes.py      what to ask a suspect API: harvested prompts from the event log, a file, or the reference task
- suspect.py     asking it (openai client, concurrent, retried, progress bar); transcripts and their hashes
- canaries.py    planted vs never-planted canary recall, Fisher's exact test
- endpoint.py    `cuirass audit endpoint`: radioactivity + text + canary tests -> one family -> one report
- plots.py, report.py   the evidence report (JSON and self-contained HTML)

The marks tested here are defined in cuirass.marks (the same keyed functions the defenses use); key
rotations and cohort checkpoints are written to the hash-chained audit log (cuirass.audit_log).
"""
