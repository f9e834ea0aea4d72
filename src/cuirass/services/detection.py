"""The detection service: event log → Detector → verdict store, off the gateway's hot path.

It tails the event table by sequence number, feeds each event to the same `Detector` that offline
replay uses, runs the campaign job every `campaign_interval_s`, and writes the verdicts of the accounts
it touched. Gateway workers (any number, on any replica sharing the database) read the verdict store.
One service per database: with PostgreSQL, run `cuirass detect watch` once beside the replicas.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

import sqlalchemy as sa

from cuirass.config import DetectionConfig
from cuirass.detect.engine import Detector
from cuirass.events.record import ANONYMOUS, Event
from cuirass.events.store import events_table
from cuirass.prove.cohorts import checkpoint
from cuirass.verdicts.store import VerdictStore

log = logging.getLogger("cuirass.detect.service")

BATCH = 2000


def load_calibration(cfg: DetectionConfig) -> dict[str, Any] | None:
    if cfg.calibration is None:
        return None
    return json.loads(cfg.calibration.read_text())


class DetectionService:
    def __init__(self, engine: sa.Engine, cfg: DetectionConfig) -> None:
        self.engine = engine
        self.cfg = cfg
        self.store = VerdictStore(engine)
        self.detector = Detector(load_calibration(cfg), campaign_interval_s=cfg.campaign_interval_s)
        self.last_seq = 0
        self.processed = 0

    def warm_start(self, now: float | None = None) -> None:
        """Begin at the first event of the last `warm_start_s` seconds, so state survives restarts."""
        since = (now or time.time()) - self.cfg.warm_start_s
        q = sa.select(sa.func.min(events_table.c.seq)).where(events_table.c.ts >= since)
        with self.engine.connect() as conn:
            first = conn.execute(q).scalar()
            if first is None:
                first = (conn.execute(sa.select(sa.func.max(events_table.c.seq))).scalar() or 0) + 1
        self.last_seq = int(first) - 1

    def step(self, now: float | None = None) -> int:
        """Process the next batch of events; returns how many. Writes the verdicts it changed."""
        cols = [c for c in events_table.c]
        q = sa.select(*cols).where(events_table.c.seq > self.last_seq).order_by(events_table.c.seq).limit(BATCH)
        with self.engine.connect() as conn:
            rows = conn.execute(q).all()
        touched: set[str] = set()
        latest = None
        for r in rows:
            self.last_seq = r.seq
            if r.account == ANONYMOUS:
                continue  # never authenticated: nothing to attribute
            event = Event.from_dict({str(k): v for k, v in r._mapping.items()})
            self.detector.observe(event)
            touched.add(event.account)
            latest = event.ts if latest is None else max(latest, event.ts)
        self.processed += len(rows)
        # Event time drives the campaign job; when idle, wall-clock time stands in for it.
        clock = latest if len(rows) == BATCH and latest is not None else (now or time.time())
        if self.detector.maybe_run_campaigns(clock):
            touched |= set(self.detector.scorer.accounts)
            self.store.put_campaigns(self.detector.campaign_report())
            # Bound memory in a long-running service: drop accounts idle for longer than the warm start.
            self.detector.forget(clock - self.cfg.warm_start_s)
        self.store.put_auto(self._row(a) for a in sorted(touched))
        return len(rows)

    def _row(self, account: str) -> dict[str, Any]:
        v = self.detector.verdict(account)
        return {"account": account, "score": round(v.score, 6), "flagged": v.flagged, "reasons": list(v.reasons),
                "campaign": v.campaign, "first_flagged_ts": v.first_flagged_ts}

    def run(self, stop: threading.Event, checkpoint_every_s: float = 300.0) -> None:
        """Tail the log until `stop` is set; every `checkpoint_every_s`, record cohort moves and the
        defenses applied in the tamper-evident audit log."""
        self.warm_start()
        log.info("detection service started at event seq %d", self.last_seq)
        next_checkpoint = time.monotonic() + checkpoint_every_s
        while not stop.is_set():
            try:
                n = self.step()
                if time.monotonic() >= next_checkpoint:
                    checkpoint(self.engine)
                    next_checkpoint = time.monotonic() + checkpoint_every_s
            except sa.exc.SQLAlchemyError as exc:
                log.warning("detection service: store unavailable (%s); retrying", type(exc).__name__)
                n = 0
            if n < BATCH:
                stop.wait(self.cfg.poll_interval_s)
