"""A real `cuirass serve` process for one condition: its own data directory, config, accounts and keys.

The lab drives the gateway exactly as customers and distillers would: over HTTP, with the `openai` client.
Accounts are created in the gateway's store before it starts (the same store `cuirass accounts create`
writes), one API key each; the key never leaves this process except in the request headers.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from cuirass.processes import free_port, wait_http

MODEL = "principal"  # the public model name the lab's gateways serve


@dataclasses.dataclass(frozen=True, slots=True)
class AccountSpec:
    """One account to create: its id, org and role in the experiment (`benign` or `campaign`)."""

    id: str
    org: str
    role: str


def gateway_config(
    teacher: str,
    decoy: str,
    policy: dict[str, Any],
    detection: bool,
    *,
    concurrency: int,
    threads: int = 1,
    device: str = "auto",
) -> dict[str, Any]:
    """The YAML config of one condition: teacher as principal, decoy beside it, this policy; each engine
    decodes up to `concurrency` requests together (the lab sends that many at once). Both are served as a
    reasoning model is in production (vLLM's --reasoning-parser): the `<think>` block as `reasoning_content`,
    the answer as `content`."""
    local = {
        "type": "local",
        "device": device,
        "threads": threads,
        "max_concurrency": concurrency,
        "reasoning_parser": "think",
    }
    return {
        "models": [{"name": MODEL, "upstream": {**local, "path": teacher}, "decoy": {**local, "path": decoy}}],
        "policy": policy,
        # campaign clustering every 20 s of event time: the lab's campaign lasts minutes, not days
        "detection": {"enabled": detection, "campaign_interval_s": 20.0, "poll_interval_s": 0.2, "refresh_s": 0.2},
        "events": {"flush_interval_s": 0.05},
        "auth": {"cache_ttl_s": 60.0},
    }


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM it when the lab process dies, however it dies (Linux prctl)."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


class Gateway:
    """Start with `Gateway(dir, config, accounts)`; `keys[account]` holds each account's API key."""

    def __init__(
        self,
        where: Path,
        config: dict[str, Any],
        accounts: list[AccountSpec],
        env: dict[str, str] | None = None,
        start_timeout_s: float = 120.0,
    ) -> None:
        from cuirass.config import load_settings
        from cuirass.storage.stores import open_store

        where.mkdir(parents=True, exist_ok=True)
        self.data_dir = where / "data"
        self.config_path = where / "cuirass.yaml"
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        settings = load_settings(self.config_path, data_dir=self.data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        store = open_store(settings)
        self.keys: dict[str, str] = {}
        for a in accounts:
            store.create_account(a.id, account_id=a.id, org=a.org, tags=[a.role])
            self.keys[a.id] = store.create_key(a.id, name="lab")[1]
        store.engine.dispose()
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        env = {
            **os.environ,
            "CUIRASS_ADMIN_KEY": "sk-cui-admin-lab-" + os.urandom(8).hex(),
            "OMP_WAIT_POLICY": "PASSIVE",
            "OMP_NUM_THREADS": "1",
            "HF_HUB_OFFLINE": "1",
            **(env or {}),
        }
        self._log = open(where / "serve.log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cuirass",
                "serve",
                "--config",
                str(self.config_path),
                "--data-dir",
                str(self.data_dir),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - only prctl
        )
        self._wait(start_timeout_s)

    def _wait(self, timeout: float) -> None:
        try:
            wait_http(f"http://127.0.0.1:{self.port}/health/liveness", self.proc, timeout)
        except RuntimeError:
            raise RuntimeError(f"cuirass serve exited with {self.proc.returncode}; see {self._log.name}") from None
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"cuirass serve did not answer within {timeout:.0f} s; see {self._log.name}") from None

    @property
    def db_path(self) -> Path:
        return self.data_dir / "cuirass.db"

    def stop(self) -> None:
        """SIGTERM to the server's process group (serve and its detection service), then wait."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(40)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait()
        self._log.close()

    def __enter__(self) -> Gateway:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
