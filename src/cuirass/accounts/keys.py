"""API key format and hashing.

A key reads `sk-cui-<key id>_<secret>`. The key id (12 hex characters) is not secret: it names the row to
look up, so the lookup itself leaks nothing about the secret. The store keeps only
HMAC-SHA256(server secret, key); a stolen database therefore yields neither keys nor an offline
dictionary attack without the server secret, which lives outside the database (a 0600 file under the
data directory, or `CUIRASS_KEY_SECRET` when several replicas share one database).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from pathlib import Path

from cuirass.secret_file import load_or_create

PREFIX = "sk-cui-"
_ID_LEN = 12


def generate_key() -> tuple[str, str]:
    """A new (key_id, raw_key). The raw key is shown once and never stored."""
    key_id = secrets.token_hex(_ID_LEN // 2)
    return key_id, f"{PREFIX}{key_id}_{secrets.token_urlsafe(32)}"


def parse_key(raw: str) -> str | None:
    """The key id of a well-formed key, else None."""
    if not raw.startswith(PREFIX) or len(raw) < len(PREFIX) + _ID_LEN + 2:
        return None
    key_id, sep = raw[len(PREFIX) : len(PREFIX) + _ID_LEN], raw[len(PREFIX) + _ID_LEN]
    return key_id if sep == "_" and all(c in "0123456789abcdef" for c in key_id) else None


class KeyHasher:
    """Keyed hashing and constant-time comparison of API keys (and of the admin key)."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("the key-hashing secret must be at least 16 bytes")
        self._secret = secret

    @classmethod
    def for_data_dir(cls, data_dir: Path) -> KeyHasher:
        """Use CUIRASS_KEY_SECRET, else the data directory's secret file (created 0600 on first use)."""
        return cls(load_or_create("CUIRASS_KEY_SECRET", data_dir / "key-secret"))

    def hash(self, raw_key: str) -> str:
        return hmac.new(self._secret, raw_key.encode(), hashlib.sha256).hexdigest()

    def matches(self, raw_key: str, stored_hash: str) -> bool:
        return hmac.compare_digest(self.hash(raw_key), stored_hash)
