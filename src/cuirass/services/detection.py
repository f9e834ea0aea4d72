"""The detection service: event log → Detector → verdict store, off the gateway's hot path.

It tails the event log (`EventLog.tail`) by sequence number, feeds each event to the same `Detector` that offline
replay uses, runs the campaign job every `campaign_interval_s`, and writes the verdicts of the accounts
it touched. Gateway workers (any number, on any replica sharing the database) read the verdict store.
One service per database: with PostgreSQL, run `cuirass detect watch` once beside the replicas
(`verdicts.lock` refuses a second one).

No event stops it: an event that cannot be read or scored is set aside in the dead-letter file with
its seq and the error, counted, and skipped; any other failure is logged and retried with backoff.
A warm start therefore never dies again on the record that stopped a previous run.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

import sqlalchemy as sa

from cuirass.audit_log import AuditLog
from cuirass.bus.push import Publisher, PushedVerdicts
from cuirass.config import DetectionConfig
from cuirass.detect.engine import Detector
from cuirass.events.deadletter import DeadLetters, RateLimitedLog
from cuirass.events.record import ANONYMOUS, Event
from cuirass.prove.cohorts import checkpoint
from cuirass.storage.stores import open_event_log, open_verdict_source
from cuirass.verdicts.source import VerdictSource

log = logging.getLogger("cuirass.detect.service")

BATCH = 2000
CAMPAIGN_RETRY_S = 60.0


def load_calibration(cfg: DetectionConfig) -> dict[str, Any] | None:
    if cfg.calibration is None:
        return None
    calibration: dict[str, Any] = json.loads(cfg.calibration.read_text())
    return calibration


def verdict_row(detector: Detector, account: str) -> dict[str, Any]:
    """The verdict store's row for an account (`VerdictSource.put_auto`), the same from a shard or the service."""
    v = detector.verdict(account)
    return {
        "account": account,
        "score": round(v.score, 6),
        "flagged": v.flagged,
        "reasons": list(v.reasons),
        "campaign": v.campaign,
        "first_flagged_ts": v.first_flagged_ts,
    }


class DetectionService:
    def __init__(
        self,
        engine: sa.Engine,
        cfg: DetectionConfig,
        dead_letters: DeadLetters | None = None,
        publisher: Publisher | None = None,
    ) -> None:
        self.engine = engine
        self.cfg = cfg
        self.dead_letters = dead_letters or DeadLetters(None, "detect", log)
        self._log = RateLimitedLog(log)
        self.events = open_event_log(engine)
        store = open_verdict_source(engine)
        # With a publisher, every gateway hears of the verdicts it writes at once (bus.push).
        self.store: VerdictSource = store if publisher is None else PushedVerdicts(store, publisher)
        self.detector = Detector(load_calibration(cfg), campaign_interval_s=cfg.campaign_interval_s)
        self.last_seq = 0
        self.processed = 0
        self._campaigns_retry_at = 0.0  # monotonic time before which a failed campaign job is not retried

    def warm_start(self, now: float | None = None) -> None:
        """Begin at the first event of the last `warm_start_s` seconds, so state survives restarts."""
        since = (now or time.time()) - self.cfg.warm_start_s
        self.last_seq = self.events.start(since)

    def step(self, now: float | None = None) -> int:
        """Process the next batch of events; returns how many. Writes the verdicts it changed."""
        # Each row is decoded on its own (`Tailed.row`), so that one undecodable row is set aside alone
        # instead of failing the whole batch, again and again, at the same seq.
        rows, _ = self.events.tail(self.last_seq, BATCH)
        touched: set[str] = set()
        latest = None
        for r in rows:
            self.last_seq = r.seq
            if r.account == ANONYMOUS:
                continue  # never authenticated: nothing to attribute
            try:
                event = Event.from_dict(r.row())
                self.detector.observe(event)
            except Exception as exc:  # noqa: BLE001 - one bad event must not switch detection off
                self.dead_letters.add(f"{type(exc).__name__}: {exc}", seq=r.seq, request_id=r.request_id)
                continue
            touched.add(event.account)
            latest = event.ts if latest is None else max(latest, event.ts)
        self.processed += len(rows)
        # Event time drives the campaign job; when idle, wall-clock time stands in for it.
        clock = latest if len(rows) == BATCH and latest is not None else (now or time.time())
        if time.monotonic() >= self._campaigns_retry_at:
            try:
                if self.detector.maybe_run_campaigns(clock):
                    touched |= set(self.detector.scorer.accounts)
                    self.store.put_campaigns(self.detector.campaign_report())
                    # Bound memory in a long-running service: drop accounts idle for longer than the warm start.
                    self.detector.forget(clock - self.cfg.warm_start_s)
            except sa.exc.SQLAlchemyError:
                raise
            except Exception:  # noqa: BLE001 - a failed campaign job must not hold back account verdicts
                self._campaigns_retry_at = time.monotonic() + CAMPAIGN_RETRY_S
                self._log.warning(
                    "detection service: campaign job failed; accounts are still scored, the job is "
                    "tried again in %.0fs",
                    CAMPAIGN_RETRY_S,
                    exc_info=True,
                )
        self.store.put_auto(self._row(a) for a in sorted(touched))
        return len(rows)

    def _row(self, account: str) -> dict[str, Any]:
        return verdict_row(self.detector, account)

    def run(self, stop: threading.Event, checkpoint_every_s: float = 300.0) -> None:
        """Tail the log until `stop` is set; every `checkpoint_every_s`, record cohort moves and the
        defenses applied in the tamper-evident audit log."""
        started = False
        next_checkpoint = time.monotonic() + checkpoint_every_s
        delay = self.cfg.poll_interval_s
        while not stop.is_set():
            try:
                if not started:
                    self.warm_start()
                    started = True
                    log.info("detection service started at event seq %d", self.last_seq)
                n = self.step()
                if time.monotonic() >= next_checkpoint:
                    checkpoint(self.events, AuditLog(self.engine))
                    next_checkpoint = time.monotonic() + checkpoint_every_s
                delay = self.cfg.poll_interval_s
            except sa.exc.SQLAlchemyError as exc:
                self._log.warning("detection service: store unavailable (%s); retrying", type(exc).__name__)
                n = 0
            except Exception:  # noqa: BLE001 - the service outlives any one failure; retried with backoff
                self._log.warning(
                    "detection service: step failed at event seq %d; retrying in %.1fs",
                    self.last_seq,
                    delay,
                    exc_info=True,
                )
                n, delay = 0, min(delay * 2, 30.0)
            if n < BATCH:
                stop.wait(delay)
