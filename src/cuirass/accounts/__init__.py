"""Accounts and their API keys: who is calling, and what they may do."""

from __future__ import annotations

from cuirass.accounts.keys import KeyHasher, generate_key, parse_key
from cuirass.accounts.store import Account, AccountStore, KeyInfo, NotFound

__all__ = ["Account", "AccountStore", "KeyHasher", "KeyInfo", "NotFound", "generate_key", "parse_key"]
