"""`cuirass lab distill`: distil the protected model the way an attacker would, and measure what the copy is worth.

config      what one run does (quick / mid / full sizes)
conditions  A no Cuirass, B default policy, C each defense alone, D answer filtering, E stealthy campaign
tasks       what is harvested and scored (the reference problems, or GSM8K-style JSONL)
workload    benign users and the campaign as plain, seeded request lists
gateway     a real `cuirass serve` per condition group, with its accounts and keys
harvest     sending a workload over HTTP with the `openai` client, concurrently
exposure    what the gateway did, read back from its event log and verdict store
student     training a student from scratch on the harvest (the project's `fit`), evaluating it
audit       serving the students and auditing each with `cuirass.prove.endpoint.audit_endpoint`
stats       Wilson intervals and the value ratio
report      results.json, summary.md, accuracy.png, audit.png
run         the orchestration
"""
