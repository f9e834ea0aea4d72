"""Secret keys for defenses and provenance, all derived from one master secret.

    key(purpose, cohort, epoch) = HMAC-SHA256(master, "purpose|cohort|epoch")

The master secret comes from `CUIRASS_MASTER_SECRET` or `<data-dir>/master-secret` (created 0600).
Derived keys never leave the process: not in responses, logs, errors or events. Accounts are hashed into
`n_cohorts` cohorts so that a leaked watermark or canary says which cohort the data left through.
"""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

from cuirass.secret_file import load_or_create


class Keyring:
    def __init__(self, master: bytes, n_cohorts: int = 16) -> None:
        if len(master) < 16:
            raise ValueError("the master secret must be at least 16 bytes")
        if n_cohorts < 1:
            raise ValueError("n_cohorts must be >= 1")
        self._master = master
        self.n_cohorts = n_cohorts

    @classmethod
    def for_data_dir(cls, data_dir: Path, n_cohorts: int = 16) -> Keyring:
        return cls(load_or_create("CUIRASS_MASTER_SECRET", data_dir / "master-secret"), n_cohorts)

    def key(self, purpose: str, cohort: str, epoch: int = 0) -> bytes:
        """The key for one purpose (e.g. "watermark"), cohort and epoch."""
        return hmac.new(self._master, f"{purpose}|{cohort}|{epoch}".encode(), hashlib.sha256).digest()

    def cohort_of(self, account: str) -> str:
        """The account's regular cohort, a keyed hash (not guessable without the master secret)."""
        h = hmac.new(self._master, f"cohort|{account}".encode(), hashlib.sha256).digest()
        return f"c{int.from_bytes(h[:8], 'big') % self.n_cohorts:03d}"

    def __repr__(self) -> str:
        return f"Keyring(n_cohorts={self.n_cohorts})"  # never the secret
