"""The processes `cuirass serve` starts: they die with it, and the one that must keep running is restarted.

Dying together uses Linux's parent-death signal (`prctl(PR_SET_PDEATHSIG)`), set in the child between
fork and exec. It was chosen over a process group or a pipe the child watches because the kernel
delivers it however the parent ends, `kill -9` included, and the child program needs no code for it
(the mock upstream, the detection service and uvicorn's workers alike). Two caveats shape the code:
the signal follows the *thread* that forked the child, so children are started only from threads that
live as long as serve (the main thread, or the supervisor's own thread); and `preexec_fn` runs between
fork and exec, so it only calls a libc function resolved beforehand. Elsewhere than Linux it does nothing.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

log = logging.getLogger("cuirass.serve")

_PR_SET_PDEATHSIG = 1
_prctl: Callable[..., int] | None = None
if sys.platform.startswith("linux"):
    try:
        _prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        _prctl = None

LOCKED = 75  # exit status of a child that found its lock taken (EX_TEMPFAIL): another instance runs


def die_with_parent(parent: int | None = None, sig: int = signal.SIGTERM) -> None:
    """Have the kernel send `sig` to this process when its parent dies; if `parent` (the pid expected)
    is already gone, send it now. Called in a child, e.g. a uvicorn worker, as it starts."""
    if _prctl is None:
        return
    _prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)
    if parent is not None and os.getppid() != parent:
        os.kill(os.getpid(), sig)


def _preexec(parent: int, sig: int) -> Callable[[], None]:
    prctl = _prctl

    def run() -> None:  # in the child, between fork and exec: no locks, no imports, no allocation to speak of
        if prctl is not None:
            prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)
            if os.getppid() != parent:  # the parent died before the call above
                os.kill(os.getpid(), signal.SIGKILL)

    return run


def spawn(args: Sequence[str], sig: int = signal.SIGTERM, **kwargs: Any) -> subprocess.Popen[bytes]:
    """Start a child that receives `sig` when the calling thread's process dies, however it dies."""
    return subprocess.Popen(list(args), preexec_fn=_preexec(os.getpid(), sig), **kwargs)  # noqa: PLW1509 - only prctl, async-signal-safe


class Supervised:
    """One child kept running: when it exits it is started again after a backoff (1 s doubling to
    `max_backoff_s`, back to 1 s after it has run `stable_s`); `stop` ends it and the supervision."""

    def __init__(
        self, name: str, args: Sequence[str], *, max_backoff_s: float = 30.0, stable_s: float = 60.0, **popen: Any
    ) -> None:
        self.name = name
        self.args = list(args)
        self.popen = popen
        self.max_backoff_s = max_backoff_s
        self.stable_s = stable_s
        self.proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._began = 0.0

    def start(self) -> None:
        """Start the child now (from the calling thread) and a thread that restarts it when it exits."""
        self._launch()
        self._thread = threading.Thread(target=self._watch, name=f"cuirass-supervise-{self.name}", daemon=True)
        self._thread.start()

    def _launch(self) -> None:
        with self._lock:
            if not self._stop.is_set():
                self._began = time.monotonic()
                self.proc = spawn(self.args, **self.popen)

    def _watch(self) -> None:
        backoff = 1.0
        while not self._stop.is_set():
            proc = self.proc
            try:
                code = proc.wait() if proc is not None else None
            except Exception:  # noqa: BLE001 - this thread must outlive any one failure
                code = None
            if self._stop.is_set():
                return
            if time.monotonic() - self._began >= self.stable_s:
                backoff = 1.0
            why = (
                "another instance holds its lock"
                if code == LOCKED
                else f"it was killed by signal {-code}"
                if code is not None and code < 0
                else f"exit status {code}"
            )
            log.warning("%s stopped (%s); restarting it in %.0f s", self.name, why, backoff)
            sys.stderr.flush()
            if self._stop.wait(backoff):
                return
            backoff = min(backoff * 2, self.max_backoff_s)
            try:
                self._launch()
                self.restarts += 1
            except OSError as exc:
                log.error("cannot restart %s: %s", self.name, exc)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop supervising, then terminate the child (killed if it has not exited within `timeout`)."""
        with self._lock:
            self._stop.set()
            proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._thread is not None:
            self._thread.join(timeout)
