"""The command line: --json everywhere, clear errors (exit 1, one line, no traceback) on bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import openai

from tests.conftest import cuirass, free_port


def test_accounts_and_keys_cli(tmp_path: Path) -> None:
    d = ["--data-dir", str(tmp_path)]
    acc = json.loads(
        cuirass(
            "accounts",
            "create",
            "Alice",
            "--org",
            "a-corp",
            "--tag",
            "beta",
            "--tag",
            "eu",
            "--payment-fingerprint",
            "pf1",
            *d,
            "--json",
        ).stdout
    )
    assert acc["name"] == "Alice" and acc["tags"] == ["beta", "eu"] and acc["payment_fingerprint"] == "pf1"
    key = json.loads(cuirass("keys", "create", acc["id"], "--rpm", "10", *d, "--json").stdout)
    shown = json.loads(cuirass("accounts", "show", acc["id"], *d, "--json").stdout)
    assert shown["keys"][0]["key_id"] == key["key_id"] and shown["keys"][0]["requests_per_min"] == 10
    assert key["key"] not in json.dumps(shown)
    listed = json.loads(cuirass("accounts", "list", *d, "--json").stdout)
    assert [a["id"] for a in listed] == [acc["id"]]
    assert "revoked" in cuirass("keys", "revoke", key["key_id"], *d).stdout
    assert "Alice" in cuirass("accounts", "list", *d).stdout


def test_cli_errors_are_clear(tmp_path: Path) -> None:
    d = ["--data-dir", str(tmp_path)]
    cases = [
        (("accounts", "show", "ghost", *d), "no account"),
        (("keys", "create", "ghost", *d), "no account"),
        (("keys", "revoke", "ghost", *d), "no key"),
        (("keys", "create", "x", "--rpm", "0", *d), "Invalid value"),
        (("accounts", "list", "--config", str(tmp_path / "missing.yaml"), *d), "config file not found"),
    ]
    for args, needle in cases:
        res = cuirass(*args, check=False)
        assert res.returncode != 0 and needle in res.stderr, (args, res.stderr)
        assert "Traceback" not in res.stderr
    cfg = tmp_path / "c.yaml"
    cfg.write_text("models:\n  - name: m\n    upstream: {base_url: 'http://x', api_key: '${CUIRASS_TEST_UNSET_VAR}'}\n")
    res = cuirass("accounts", "list", "--config", str(cfg), *d, check=False)
    assert res.returncode != 0 and "CUIRASS_TEST_UNSET_VAR" in res.stderr and "Traceback" not in res.stderr
    cfg.write_text("server: {port: 'eighty'}\n")
    res = cuirass("accounts", "list", "--config", str(cfg), *d, check=False)
    assert res.returncode != 0 and "server.port" in res.stderr


def test_env_overrides_and_secret_references(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("models:\n  - name: m\n    upstream: {base_url: 'http://x', api_key: '${MY_UPSTREAM_KEY}'}\n")
    from cuirass.config import load_settings

    os.environ["MY_UPSTREAM_KEY"] = "s3cret"
    os.environ["CUIRASS_SERVER__PORT"] = "9191"
    try:
        s = load_settings(cfg)
    finally:
        del os.environ["MY_UPSTREAM_KEY"], os.environ["CUIRASS_SERVER__PORT"]
    assert s.server.port == 9191
    assert s.models[0].upstream.api_key.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(s)


def test_embedded_default_serves_with_zero_config(tmp_path: Path) -> None:
    """`cuirass serve` alone: built-in model, first account and key, admin key printed once."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CUIRASS_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "cuirass", "serve", "--data-dir", str(tmp_path), "--port", str(port), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        info = json.loads(proc.stdout.readline())
        assert info["base_url"] == f"http://127.0.0.1:{port}/v1" and info["admin_key"] and info["api_key"]
        c = openai.OpenAI(base_url=info["base_url"], api_key=info["api_key"], max_retries=0)
        deadline = time.monotonic() + 20
        while True:
            try:
                r = c.chat.completions.create(
                    model=info["models"][0], messages=[{"role": "user", "content": "What is 17 * 23?"}]
                )
                break
            except openai.APIConnectionError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        assert r.choices[0].message.content
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    # A second start keeps the state: no new admin key, no new first account.
    proc = subprocess.Popen(
        [sys.executable, "-m", "cuirass", "serve", "--data-dir", str(tmp_path), "--port", str(port), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        again = json.loads(proc.stdout.readline())
        assert "admin_key" not in again and "api_key" not in again
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def test_help_lists_every_command_and_a_command_loads_only_its_own_module() -> None:
    """`cuirass --help` names every command that a module of `cuirass.cli` defines (none is left out of the lazy
    map); `cuirass keys ...` runs without importing the gateway, the detector or the lab (each command's module is
    imported when it runs)."""
    import importlib
    import pkgutil

    from cuirass import cli as package

    modules = [importlib.import_module(f"cuirass.cli.{m.name}") for m in pkgutil.iter_modules(package.__path__)]
    defined = {c.name for module in modules for c in getattr(module, "COMMANDS", [])}
    expected = {"accounts", "audit", "db", "demo", "detect", "events", "fleet", "keys", "lab", "mock-upstream", "serve"}
    assert expected <= defined
    listed = cuirass("--help").stdout
    for name in sorted(defined):
        assert f"\n  {name} " in listed, name
    probe = (
        "import sys\nfrom click.testing import CliRunner\nfrom cuirass.cli import main\n"
        "r = CliRunner().invoke(main, ['keys', '--help'])\nassert r.exit_code == 0, r.output\n"
        "print(sorted(m for m in sys.modules if m.split('.')[:2] in (['cuirass', 'gateway'], ['cuirass', 'detect'], "
        "['cuirass', 'lab']) or m.split('.')[0] in ('nats', 'redis', 'torch')))"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60)
    assert loaded.stdout.strip() == "[]"
