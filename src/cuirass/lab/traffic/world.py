"""The shared setting every simulated actor lives in: seed, time window, public model names."""

from __future__ import annotations

import dataclasses
import random
import zlib

from cuirass.lab.traffic.clock import Window


@dataclasses.dataclass(frozen=True, slots=True)
class World:
    """Seed, window and models. `new_model` is released at `window.release` (the pivot target)."""

    seed: int
    window: Window
    models: tuple[str, ...] = ("atlas-1", "atlas-1-mini")
    new_model: str = "atlas-2"

    def rng(self, *parts: object) -> random.Random:
        """An independent, reproducible random stream for one actor or purpose."""
        return random.Random(":".join(str(p) for p in (self.seed, *parts)))

    def model_for(self, rng: random.Random, ts: float, adopt_at: float | None, account: str) -> str:
        """The model a client asks for at `ts`: the new one once it adopted it, else its configured
        one (80% of clients use the main model, 20% the small one), with an occasional try of the other."""
        if adopt_at is not None and ts >= max(adopt_at, self.window.release):
            return self.new_model
        usual = 0 if zlib.crc32(f"{self.seed}:{account}".encode()) % 5 else 1
        return self.models[usual if rng.random() < 0.95 else 1 - usual]
