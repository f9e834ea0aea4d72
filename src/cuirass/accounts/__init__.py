"""Accounts and their API keys: who is calling, and what they may do."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cuirass.accounts.keys import KeyHasher, generate_key, parse_key
from cuirass.accounts.store import Account, AccountStore, KeyInfo, NotFound

if TYPE_CHECKING:
    from cuirass.config import Settings

__all__ = ["Account", "AccountStore", "KeyHasher", "KeyInfo", "NotFound", "generate_key", "open_store", "parse_key"]


def open_store(settings: Settings) -> AccountStore:
    """The account store of a deployment: its database, with the key hasher of its data directory."""
    from cuirass.db import make_engine

    return AccountStore(make_engine(settings.database_url), KeyHasher.for_data_dir(settings.data_dir))
