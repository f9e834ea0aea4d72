"""Verdicts: what detection concluded about each account, and what operators decided.

- model.py  the effective verdict as plain data (no SQL): what the policy reads;
- source.py the interface the detection service and the gateway use (VerdictSource);
- store.py  the SQL store the detection service writes and every gateway worker reads (VerdictCache).
"""
