"""Detection: score accounts and networks of accounts for distillation, online and offline.

Folder map (the data flow of docs/architecture.md): phrases/digest (what one request says) -> signals
(per-account evidence) -> scoring (online account risk) -> campaigns (periodic network job)
-> engine (the Detector the gateway and replay share) -> replay / calibrate (offline).
"""

from cuirass.detect.calibrate import calibrate
from cuirass.detect.engine import Detector, Verdict
from cuirass.detect.replay import replay

__all__ = ["Detector", "Verdict", "calibrate", "replay"]
