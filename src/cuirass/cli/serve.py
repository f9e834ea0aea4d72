"""`cuirass serve`: run the gateway. With no models configured, it protects the built-in model."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
from typing import Any

import click
import orjson

from cuirass.children import Supervised, spawn
from cuirass.cli.common import location_options, settings_or_exit
from cuirass.config import ConfigError, ModelConfig, Settings, UpstreamConfig
from cuirass.processes import free_port, wait_http

BUILTIN_MODEL = "cuirass-reference"


def builtin_models() -> list[ModelConfig] | None:
    """The shipped reference model (principal) and its decoy, served in-process by the local engine;
    None when the engine extra (torch, transformers) is not installed."""
    import importlib.util

    from cuirass.models import DECOY, REFERENCE

    if not all(importlib.util.find_spec(m) for m in ("torch", "transformers")):
        return None
    if not (REFERENCE / "config.json").exists() or not (DECOY / "config.json").exists():
        return None
    return [
        ModelConfig(
            name=BUILTIN_MODEL,
            upstream=UpstreamConfig(type="local", path="builtin:reference", reasoning_parser="think"),
            decoy=UpstreamConfig(type="local", path="builtin:decoy", reasoning_parser="think"),
        )
    ]


def start_builtin_model() -> tuple[subprocess.Popen[bytes], str]:
    """Start the fallback built-in principal, the mock upstream, on a free loopback port."""
    port = free_port()
    proc = spawn(
        [
            sys.executable,
            "-m",
            "cuirass",
            "mock-upstream",
            "--port",
            str(port),
            "--model",
            BUILTIN_MODEL,
            "--tokens",
            "64",
        ],
        stdout=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        wait_http(url + "/models", proc, 30)
    except RuntimeError:
        raise click.ClickException("the built-in model failed to start") from None
    except TimeoutError:
        raise click.ClickException("the built-in model did not start within 30 s") from None
    return proc, url


def start_detection(config_path: str | None, settings: Settings) -> Supervised:
    """The online detection service, in its own process so scoring never competes with the event loop;
    restarted with backoff whenever it exits, and ended with serve (even by `kill -9`)."""
    args = [sys.executable, "-m", "cuirass", "detect", "watch", "--data-dir", str(settings.data_dir)]
    if config_path:
        args += ["--config", config_path]
    watcher = Supervised("the detection service (detect watch)", args)
    watcher.start()
    return watcher


def ensure_admin_key(settings: Settings) -> str | None:
    """With no CUIRASS_ADMIN_KEY, generate one on first start (returned to print once)."""
    if settings.admin_key is not None:
        return None
    from cuirass.gateway.app import ADMIN_HASH_META
    from cuirass.storage.stores import open_store

    store = open_store(settings)
    if store.get_meta(ADMIN_HASH_META):
        return None
    raw = "sk-cui-admin-" + secrets.token_urlsafe(32)
    store.set_meta(ADMIN_HASH_META, store.hasher.hash(raw))
    return raw


def ensure_first_account(settings: Settings) -> dict[str, Any] | None:
    """On an empty store, create a first account and key so the quick start works at once."""
    from cuirass.storage.stores import open_store

    store = open_store(settings)
    if store.list_accounts(limit=1):
        return None
    acc = store.create_account("default", account_id="default")
    key_id, raw = store.create_key(acc.id, name="first key")
    return {"account": acc.id, "key_id": key_id, "api_key": raw}


def _snippet(base_url: str, model: str, key: str) -> str:
    return (
        "from openai import OpenAI\n"
        f'client = OpenAI(base_url="{base_url}", api_key="{key}")\n'
        f'r = client.chat.completions.create(model="{model}", messages=[{{"role": "user", "content": "At the market, shells cost 2 dollars each. David takes 8 of them and also a puzzle for 5 dollars, and hands over 50 dollars. What is the change?"}}])\n'
        "print(r.choices[0].message.content)"
    )


@click.command()
@location_options
@click.option(
    "--upstream", help="Proxy every model this OpenAI-compatible server lists (e.g. http://127.0.0.1:8000/v1)."
)
@click.option("--host", help="Address to listen on (default: 127.0.0.1).")
@click.option("--port", type=click.IntRange(0, 65535), help="Port to listen on (default: 8080).")
@click.option("--workers", type=click.IntRange(1), help="Worker processes (default: 1).")
@click.option("--json", "as_json", is_flag=True, help="Print the start-up information as one JSON object.")
def serve(
    config_path: str | None,
    upstream: str | None,
    data_dir: str | None,
    host: str | None,
    port: int | None,
    workers: int | None,
    as_json: bool,
) -> None:
    """Serve the protected OpenAI-compatible API at http://HOST:PORT/v1."""
    # Set before any child process starts, so a SIGTERM at any moment stops the server and the children
    # (finally, below); uvicorn takes SIGTERM over while it runs and hands it back when it stops.
    stop = _Stop()
    signal.signal(signal.SIGTERM, stop.request)
    server = {k: v for k, v in {"host": host, "port": port, "workers": workers}.items() if v is not None}
    settings = settings_or_exit(config_path, upstream=upstream, data_dir=data_dir, server=server or None)
    builtin = not settings.models and not settings.upstream
    builtin_proc = None
    children: list[Any] = []  # stopped on any exit, however early; on kill -9 the kernel ends them
    try:
        if builtin:
            local = builtin_models()
            if local is not None:
                settings.models = local
            else:  # no engine installed: a deterministic mock stands in for the model
                builtin_proc, url = start_builtin_model()
                children.append(builtin_proc)
                settings.models = [ModelConfig(name=BUILTIN_MODEL, upstream=UpstreamConfig(base_url=url))]
        _check_policy(settings)
        admin_key = ensure_admin_key(settings)
        first = ensure_first_account(settings) if builtin else None
        srv = settings.server
        base_url = f"http://{srv.host}:{srv.port}/v1"
        info: dict[str, Any] = {
            "base_url": base_url,
            "models": [m.name for m in settings.models] or "discovered from upstream",
            "data_dir": str(settings.data_dir),
            "workers": srv.workers,
        }
        if builtin:
            info["engine"] = "local" if builtin_proc is None else "mock"
        if admin_key:
            info["admin_key"] = admin_key
        if first:
            info.update(first)
        if settings.detection.enabled and settings.events.bus:
            # Events go to the bus, which `detect watch` (it tails the SQL log) does not read.
            info["detection"] = "on the bus: run `cuirass detect shard` (docs/fleet.md)"
        elif settings.detection.enabled:  # before the announcement: a client that stops us on reading it finds
            children.append(start_detection(config_path, settings))  # the watcher already in `children`
        _announce(info, as_json, builtin)
        _run(settings, config_path, builtin, stop)
    except KeyboardInterrupt:
        pass
    finally:
        for child in children:
            if isinstance(child, Supervised):
                child.stop()
            else:
                child.terminate()
                child.wait(10)


def _check_policy(settings: Settings) -> None:
    """Refuse to start on a policy that names defenses that do not exist, or on a limits backend that is not
    one (before any worker starts)."""
    from cuirass.keyring import Keyring
    from cuirass.limits import open_limiter
    from cuirass.respond.responder import Responder

    try:
        Responder(settings.policy, Keyring.for_data_dir(settings.data_dir, settings.policy.n_cohorts))
        open_limiter(settings)  # connects to nothing yet
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _announce(info: dict[str, Any], as_json: bool, builtin: bool) -> None:
    if as_json:
        sys.stdout.write(orjson.dumps(info).decode() + "\n")
        sys.stdout.flush()
        return
    out = [f"Cuirass gateway on {info['base_url']}  (data: {info['data_dir']}, workers: {info['workers']})"]
    if builtin:
        kind = (
            "the reference model and its decoy, served locally"
            if info.get("engine") == "local"
            else "a deterministic mock: install the engine extra for the reference model"
        )
        out.append(f"Protecting the built-in model '{info['models'][0]}' ({kind}).")
    if "detection" in info:
        out.append(f"Detection: {info['detection']}.")
    if "admin_key" in info:
        out.append(f"Admin key (shown once; or set CUIRASS_ADMIN_KEY): {info['admin_key']}")
    if "api_key" in info:
        out.append(f"First account '{info['account']}', API key (shown once): {info['api_key']}")
        out.append("\nTry it:\n" + _snippet(info["base_url"], info["models"][0], info["api_key"]) + "\n")
    click.echo("\n".join(out), err=True)


class _Stop:
    """SIGTERM as a request to stop, never an exception: one that comes before uvicorn has taken the signal
    over (while the app is built) is remembered and passed to the server, so it cannot be lost in between."""

    def __init__(self) -> None:
        self.requested = False
        self.server: Any = None

    def request(self, *_: object) -> None:
        self.requested = True
        if self.server is not None:
            self.server.should_exit = True


def _run(settings: Settings, config_path: str | None, builtin: bool, stop: _Stop) -> None:
    import uvicorn

    srv = settings.server
    common: dict[str, Any] = {
        "host": srv.host,
        "port": srv.port,
        "loop": "uvloop",
        "http": "cuirass.gateway.http_protocol:GuardedHttpToolsProtocol",
        "log_level": "warning",
        "access_log": False,
        "timeout_graceful_shutdown": 30,
        "lifespan": "on",
    }
    if srv.workers == 1:
        from cuirass.gateway.app import create_app

        stop.server = uvicorn.Server(uvicorn.Config(create_app(settings), **common))
        stop.server.should_exit = stop.requested
        stop.server.run()
        return
    # Several processes: each rebuilds its settings from the file plus these environment overrides.
    env = os.environ
    env["CUIRASS_DATA_DIR"] = str(settings.data_dir)
    env["CUIRASS_SERVER__WORKERS"] = str(srv.workers)  # e.g. the limits are kept where all workers see them
    if config_path:
        env["CUIRASS_CONFIG"] = config_path
    if settings.upstream:
        env["CUIRASS_UPSTREAM"] = settings.upstream
    if builtin:  # the built-in model's address is known only to this process
        env["CUIRASS_MODELS"] = orjson.dumps([m.model_dump(mode="json") for m in settings.models]).decode()
    prom = settings.data_dir / "prometheus"
    shutil.rmtree(prom, ignore_errors=True)
    prom.mkdir(parents=True)
    env["PROMETHEUS_MULTIPROC_DIR"] = str(prom)
    env["CUIRASS_SERVE_PID"] = str(os.getpid())  # each worker asks to die with this process (children.py)
    if not stop.requested:  # the supervisor takes SIGTERM over from here
        uvicorn.run("cuirass.gateway.app:app_from_env", factory=True, workers=srv.workers, **common)


COMMANDS = [serve]
