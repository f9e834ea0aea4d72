"""The honeypotllm peer: per-key suspicion scores on our traffic, run in its own virtual environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson

from cuirass.events.record import message_text

DEFAULT_VENV = Path(".venv-peers/honeypotllm")
PROMPT_CHARS = 200  # the peer keeps 120 characters of a prompt; send a little more


def python_path(explicit: str | None = None) -> Path | None:
    """The peer's interpreter: explicit, $CUIRASS_HONEYPOT_PYTHON, or ./.venv-peers/honeypotllm; None if absent."""
    for cand in (explicit, os.environ.get("CUIRASS_HONEYPOT_PYTHON"), str(DEFAULT_VENV / "bin" / "python")):
        if cand and Path(cand).exists():
            return Path(cand)
    return None


def feed_line(ev: dict[str, Any]) -> bytes:
    """What the peer sees of one event, as its own middleware takes it: the last message's text."""
    messages = ev.get("messages") or []
    prompt = message_text(messages[-1])[:PROMPT_CHARS] if messages else ""
    usage = (ev.get("response") or {}).get("usage") or {}
    return orjson.dumps(
        [ev["ts"], ev["account"], prompt, int(usage.get("prompt_tokens") or 0)], option=orjson.OPT_APPEND_NEWLINE
    )


def score(python: Path, feed: Path, out: Path) -> dict[str, Any]:
    """Run the peer over a feed file; returns {"threshold", "accounts": {account: {...}}}."""
    script = Path(__file__).with_name("honeypot_replay.py")
    proc = subprocess.run([str(python), str(script), str(feed), str(out)], capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-2000:])
        raise RuntimeError(f"honeypotllm replay failed with exit code {proc.returncode}")
    result: dict[str, Any] = orjson.loads(out.read_bytes())
    return result


def first_crossing(steps: list[list[float]], threshold: float) -> float | None:
    """Event time at which the running peak score first exceeded `threshold` (None if never)."""
    for ts, peak in steps:
        if peak > threshold:
            return ts
    return None
