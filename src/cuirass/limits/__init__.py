"""Per-key request and token limits, kept in the process, in a SQLite file, or in Redis (docs/fleet.md).

gcra.py is the rule; decision.py what a client is told; memory.py, sqlite.py and redis.py keep the counters
(backend.py, their interface); limiter.py bounds a backend in time and answers for it when it is down.
"""

from cuirass.limits.backend import Backend
from cuirass.limits.decision import Decision
from cuirass.limits.limiter import Limiter, open_limiter

__all__ = ["Backend", "Decision", "Limiter", "open_limiter"]
