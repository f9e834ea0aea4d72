"""The interface a content-type perturber implements, and the keyed randomness all of them draw from.

Every choice (which variant, which step, which number) comes from a `random.Random` seeded with
HMAC-SHA256(key, parts), so a response is perturbed the same way each time the same cohort key meets the
same prompt, and keys of different cohorts perturb differently.
"""

from __future__ import annotations

import abc
import hashlib
import hmac
import random
from typing import ClassVar


def keyed_rng(key: bytes, *parts: str) -> random.Random:
    """A generator seeded by HMAC-SHA256(key, parts joined by US); integer seeding is stable across Pythons."""
    digest = hmac.new(key, "\x1f".join(parts).encode(), hashlib.sha256).digest()
    return random.Random(int.from_bytes(digest, "big"))


class Perturber(abc.ABC):
    """Rewrites text of one content type by one named variant, keeping what a checker would verify."""

    content_type: ClassVar[str]
    variants: ClassVar[tuple[str, ...]]

    @abc.abstractmethod
    def apply(self, text: str, variant: str, rng: random.Random) -> str | None:
        """`text` perturbed by `variant`, or None when the variant does not apply to this text."""

    @abc.abstractmethod
    def preserves(self, original: str, perturbed: str) -> bool:
        """Whether `perturbed` keeps what must not change (the final answer, runnable code)."""
