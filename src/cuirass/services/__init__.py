"""Long-running jobs beside the gateway, off its hot path, that tie the middle packages together.

- detection.py  event log → `detect.Detector` → verdict store, with periodic audit-log checkpoints
                (`cuirass detect watch`; `cuirass serve` starts it in its own process).
"""
