"""Verdicts, overrides and key revocations pushed to every gateway: what a notice says, who sends, who listens.

Every write path sends a notice after its SQL commit: the detection service (`PushedVerdicts` around its
verdict source), operator overrides and key revocations (admin API and CLI, through a `Publisher`). Each
gateway worker runs a `Receiver`, which re-reads what a notice names from the SQL store and applies it
to the hot path's caches at once; the periodic poll (`detection.refresh_s`) stays as the safety net.

A notice carries names, never data:

    {"v": 1, "kind": "verdicts" | "keys", "ids": ["acct_1", ...], "all": false, "origin": "9f2c...", "n": 7}

Why names and not the verdicts themselves: the SQL store is the record, so the receiver's answer is
always what the store holds now. A forged notice (anyone who can write to the channel) can at worst
cause a re-read, never a wrong verdict or an unrevoked key; two notices crossing in flight cannot leave
an older verdict in force; and nothing secret (key hashes, reasons, prompts) ever goes on the wire.
The price is one small query per notice on each gateway, which is what a poll costs anyway.

`origin` and `n` (one counter per sending process) let a receiver see that it missed a notice from a
sender; it then re-reads everything. It does the same whenever its subscription is (re)established.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Literal

import orjson

from cuirass.accounts import AccountStore
from cuirass.bus.notify import Notifier, PushUnavailable, open_notifier
from cuirass.config import Settings
from cuirass.events.deadletter import RateLimitedLog
from cuirass.verdicts.model import AccountVerdict
from cuirass.verdicts.source import VerdictSource
from cuirass.verdicts.store import FLOOR, VerdictCache

log = logging.getLogger("cuirass.push")

Kind = Literal["verdicts", "keys"]
KINDS: tuple[Kind, ...] = ("verdicts", "keys")
VERSION = 1
MAX_IDS = 256  # a change naming more accounts is sent as "all" (one full re-read instead of many small)
MAX_ID_CHARS = 64  # account ids and key ids are at most this long in the store
MAX_NOTICE_BYTES = 32 * 1024  # a longer notice is not one of ours
Count = Callable[[str], None]  # outcome -> metric (the gateway wires Prometheus; None elsewhere)


@dataclasses.dataclass(frozen=True, slots=True)
class Notice:
    kind: Kind
    ids: tuple[str, ...]  # empty when `everything`
    everything: bool
    origin: str
    n: int


def encode(notice: Notice) -> bytes:
    return orjson.dumps(
        {
            "v": VERSION,
            "kind": notice.kind,
            "ids": list(notice.ids),
            "all": notice.everything,
            "origin": notice.origin,
            "n": notice.n,
        }
    )


def decode(data: bytes) -> Notice:
    """A notice from untrusted bytes; ValueError for anything that is not exactly one of ours."""
    if not isinstance(data, bytes) or len(data) > MAX_NOTICE_BYTES:
        raise ValueError("not a notice: too long")
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise ValueError("not a notice: not JSON") from None
    if not isinstance(obj, dict) or obj.get("v") != VERSION:
        raise ValueError("not a notice: not an object of this version")
    kind, ids, everything, origin, n = (obj.get(k) for k in ("kind", "ids", "all", "origin", "n"))
    if kind not in KINDS:
        raise ValueError("not a notice: unknown kind")
    if not isinstance(ids, list) or len(ids) > MAX_IDS:
        raise ValueError("not a notice: ids")
    if not all(isinstance(i, str) and 0 < len(i) <= MAX_ID_CHARS for i in ids):
        raise ValueError("not a notice: an id")
    if not isinstance(everything, bool) or not isinstance(origin, str) or not 0 < len(origin) <= 64:
        raise ValueError("not a notice: all or origin")
    if isinstance(n, bool) or not isinstance(n, int) or not 0 < n < 2**63:
        raise ValueError("not a notice: n")
    return Notice(kind, tuple(ids), everything, origin, n)


class Publisher:
    """Sends notices for one process. Never raises: a failed send is counted and logged (at most every
    10 s), and the other gateways pick the change up at their next poll (or when the counter's gap tells
    them one was lost). After a failure, sends in the next `PAUSE_S` fail at once without trying, so a
    backend that does not answer cannot slow every write down by a timeout."""

    PAUSE_S = 1.0

    def __init__(self, notifier: Notifier | None, count: Count | None = None) -> None:
        self.notifier = notifier
        self.origin = secrets.token_hex(8)
        self.sent = 0
        self.failed = 0
        self._n = 0
        self._paused_until = 0.0
        self._lock = threading.Lock()
        self._count = count
        self._log = RateLimitedLog(log)

    def verdicts_changed(self, accounts: Iterable[str]) -> None:
        """After the commit of new verdicts or overrides of these accounts."""
        self._send("verdicts", accounts)

    def keys_revoked(self, key_ids: Iterable[str]) -> None:
        """After the commit of the revocation of these keys."""
        self._send("keys", key_ids)

    def _send(self, kind: Kind, ids: Iterable[str]) -> None:
        if self.notifier is None:
            return
        names = tuple(dict.fromkeys(ids))
        if not names:
            return
        everything = len(names) > MAX_IDS or any(not 0 < len(i) <= MAX_ID_CHARS for i in names)
        with self._lock:
            self._n += 1
            n = self._n
        notice = Notice(kind, () if everything else names, everything, self.origin, n)
        try:
            if time.monotonic() < self._paused_until:
                raise PushUnavailable("paused after a failure")
            self.notifier.publish(encode(notice))
        except PushUnavailable as exc:
            self._paused_until = max(self._paused_until, time.monotonic() + self.PAUSE_S)
            self.failed += 1
            self._outcome("send_failed")
            self._log.warning(
                "push: could not send a %s notice (%s); other gateways apply it at their next poll", kind, exc
            )
            return
        self.sent += 1
        self._outcome("sent")

    def _outcome(self, outcome: str) -> None:
        if self._count is not None:
            self._count(outcome)


@contextlib.contextmanager
def publishing(settings: Settings) -> Iterator[Publisher]:
    """A publisher for one command (the CLI): connected to the fleet's push backend, closed after."""
    notifier = open_notifier(settings)
    try:
        yield Publisher(notifier)
    finally:
        if notifier is not None:
            notifier.close()


class PushedVerdicts:
    """A `VerdictSource` that sends a notice after each write of automatic verdicts: what the detection
    service (and each detector shard) writes through, so that every gateway applies it at once.

    Only accounts that matter to a gateway are named: those its cache holds (score at or above the
    cache's floor, or flagged) now or held before; the many accounts scored and found harmless are not.
    """

    def __init__(self, inner: VerdictSource, publisher: Publisher, floor: float = FLOOR) -> None:
        self.inner = inner
        self.publisher = publisher
        self.floor = floor
        self._held: set[str] = set()  # accounts this writer last wrote as mattering

    def put_auto(self, rows: Iterable[dict[str, Any]]) -> int:
        rows = list(rows)
        n = self.inner.put_auto(rows)
        changed = []
        for r in rows:
            matters = bool(r["flagged"]) or float(r["score"]) >= self.floor
            if matters or r["account"] in self._held:
                changed.append(r["account"])
            (self._held.add if matters else self._held.discard)(r["account"])
        self.publisher.verdicts_changed(changed)
        return n

    def put_campaigns(self, campaigns: list[dict[str, Any]]) -> None:
        # The campaign list is not in a gateway's cache; each member's campaign comes with its put_auto row.
        self.inner.put_campaigns(campaigns)

    def get(self, account: str) -> AccountVerdict:
        return self.inner.get(account)

    def poll(self, floor: float) -> dict[str, AccountVerdict]:
        return self.inner.poll(floor)


class Receiver:
    """Applies notices to one gateway worker's caches, in a thread of its own (never the event loop).

    `on_message` only decodes and queues, on the notifier's thread; the worker thread re-reads what is
    queued, all of it at once, so a burst of notices costs one re-read. Anything that is not a valid
    notice is counted and dropped: a hostile channel can make a gateway re-read, nothing more.
    """

    MIN_INTERVAL_S = 0.02  # between two re-reads: a flood of notices cannot turn into a flood of queries

    def __init__(self, cache: VerdictCache, accounts: AccountStore, count: Count | None = None) -> None:
        self.cache = cache
        self.accounts = accounts
        self.notifier: Notifier | None = None
        self.received = 0
        self.rejected = 0
        self._count = count
        self._log = RateLimitedLog(log)
        self._cond = threading.Condition()
        self._accounts: set[str] = set()
        self._keys: set[str] = set()
        self._everything = False
        self._last_n: dict[str, int] = {}
        self._stop = False
        self._thread: threading.Thread | None = None

    def attach(self, notifier: Notifier) -> None:
        """Start applying, and subscribe to `notifier`."""
        self.notifier = notifier
        self._thread = threading.Thread(target=self._run, name="cuirass-push-receiver", daemon=True)
        self._thread.start()
        notifier.subscribe(self.on_message, self.on_connect)

    def on_message(self, data: bytes) -> None:
        try:
            notice = decode(data)
        except ValueError as exc:
            self.rejected += 1
            self._outcome("rejected")
            self._log.warning("push: dropped a message that is not a notice (%s)", exc)
            return
        self.received += 1
        self._outcome("received")
        with self._cond:
            last = self._last_n.get(notice.origin)
            missed = last is not None and notice.n > last + 1
            if len(self._last_n) > 10_000:  # senders come and go (each process is one): forget old ones
                self._last_n.clear()
            self._last_n[notice.origin] = max(notice.n, last or 0)
            if missed:  # a notice from this sender was lost: re-read everything it could have named
                self._everything = True
                self._keys.add("*")
            elif notice.kind == "verdicts":
                if notice.everything:
                    self._everything = True
                self._accounts.update(notice.ids)
            else:
                self._keys.update(("*",) if notice.everything else notice.ids)
            self._cond.notify()

    def on_connect(self) -> None:
        """(Re)subscribed: notices sent while away are lost, so re-read everything."""
        with self._cond:
            self._everything = True
            self._keys.add("*")
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not (self._stop or self._everything or self._accounts or self._keys):
                    self._cond.wait()
                if self._stop:
                    return
                everything, accounts, keys = self._everything, self._accounts, self._keys
                self._everything, self._accounts, self._keys = False, set(), set()
            try:
                self._apply(everything, accounts, keys)
            except Exception as exc:  # noqa: BLE001 - the store may be down; the periodic poll retries
                self._log.warning("push: re-read failed (%s); the next poll catches up", type(exc).__name__)
            time.sleep(self.MIN_INTERVAL_S)

    def _apply(self, everything: bool, accounts: set[str], keys: set[str]) -> None:
        if keys:  # no query: the next lookup of a forgotten key reads the store
            self.accounts.forget(None if "*" in keys else keys)
        if everything or len(accounts) > MAX_IDS:
            self.cache.refresh()
        elif accounts:
            self.cache.refresh_accounts(accounts)

    def _outcome(self, outcome: str) -> None:
        if self._count is not None:
            self._count(outcome)

    def state(self) -> dict[str, Any]:
        """For readiness: the push is a speed-up, so its state is reported but never makes a worker unready."""
        n = self.notifier
        return {
            "backend": n.backend if n is not None else None,
            "connected": bool(n is not None and n.connected),
            "received": self.received,
            "rejected": self.rejected,
        }

    def close(self) -> None:
        """Stop applying (the notifier is its opener's to close)."""
        with self._cond:
            self._stop = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(5)
