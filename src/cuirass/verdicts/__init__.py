"""The verdict store: what detection concluded about each account, and what operators decided."""

from cuirass.verdicts.store import OVERRIDES, AccountVerdict, VerdictStore

__all__ = ["OVERRIDES", "AccountVerdict", "VerdictStore"]
