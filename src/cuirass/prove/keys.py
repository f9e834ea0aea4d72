"""The keys an audit tests: one per (channel purpose, cohort, epoch), derived from the master secret.

A report never contains a key. It carries a commitment to each one,

    commitment = SHA-256("cuirass-key-commitment|" || key)

so a third party who is later given the keys (e.g. an expert under a protective order) can check that
they are the keys the audit used, and re-run it.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence

from cuirass.keyring import Keyring
from cuirass.marks.epochs import Epoch


@dataclasses.dataclass(frozen=True, slots=True)
class KeyRef:
    purpose: str
    cohort: str
    epoch: int
    key: bytes = dataclasses.field(repr=False)

    @property
    def commitment(self) -> str:
        return hashlib.sha256(b"cuirass-key-commitment|" + self.key).hexdigest()


def keys_for(keyring: Keyring, purpose: str, cohorts: Sequence[str], epochs: Sequence[Epoch]) -> list[KeyRef]:
    """Every (cohort, epoch) key of one purpose, epoch by epoch."""
    return [KeyRef(purpose, c, e.epoch, keyring.key(purpose, c, e.epoch)) for e in epochs for c in cohorts]
