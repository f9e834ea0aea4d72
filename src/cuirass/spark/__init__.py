"""History on Apache Spark: the single-process causal replay of an event log, as a Spark job.

`cuirass detect run --engine spark` (history.py) gives the report `--engine local` gives
(detect/replay.py), running the same digest, scoring and campaign code: per-account work in
Spark's Python workers (passes.py), the campaign jobs on the driver (jobs.py), on the schedule
the Detector keeps (schedule.py). PySpark is an optional extra: `pip install 'cuirass[spark]'`.
"""
