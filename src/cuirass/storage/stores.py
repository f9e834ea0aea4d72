"""The stores of a deployment, opened from its settings: the database brought to head, the data directory's secrets."""

from __future__ import annotations

from cuirass.accounts import AccountStore, KeyHasher
from cuirass.config import Settings
from cuirass.storage.migrate import make_engine


def open_store(settings: Settings) -> AccountStore:
    """The account store of a deployment: its database, with the key hasher of its data directory."""
    return AccountStore(make_engine(settings.database_url), KeyHasher.for_data_dir(settings.data_dir))
