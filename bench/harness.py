"""Shared pieces of the benchmarks: process lifecycle, the fixed nginx upstream, request bodies, wrk runs.

Everything listens on 127.0.0.1 only. Every process a benchmark starts is registered with `Procs`,
started in its own session, and terminated (then killed) by process-group id when the run ends,
whether it ends normally, by an exception or by Ctrl-C.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from cuirass.processes import free_port  # also re-exported to the benchmarks

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
VENV = ROOT / ".venv"
CUIRASS = VENV / "bin" / "cuirass"
PYSPY = VENV / "bin" / "py-spy"
LITELLM_VENV = ROOT / ".venv-peers" / "litellm"
LITELLM_VERSION = "1.82.6"
WRK_SCRIPT = BENCH / "wrk_post.lua"

MODEL = "m"  # public model name everywhere; the upstream serves it under the same name
PROMPT = [
    {"role": "system", "content": "You are a helpful assistant. Answer briefly and precisely."},
    {"role": "user", "content": "Explain in two sentences why the sky looks blue during the day."},
]


def chat_body(stream: bool, model: str = MODEL) -> bytes:
    body: dict[str, Any] = {"model": model, "messages": PROMPT, "max_tokens": 32, "temperature": 0.7}
    if stream:
        body["stream"] = True
    return json.dumps(body, separators=(",", ":")).encode()


# ---------------------------------------------------------------- the fixed upstream (nginx)

_WORDS = (
    "the sky looks blue because air molecules scatter short blue wavelengths of sunlight much more "
    "strongly than long red ones so blue light reaches our eyes from every direction of the sky"
).split()


def _fixed_json() -> str:
    content = " ".join(_WORDS[:32])
    return json.dumps(
        {
            "id": "chatcmpl-fixed0123456789",
            "object": "chat.completion",
            "created": 1767225600,
            "model": MODEL,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "logprobs": None,
                    "finish_reason": "length",
                }
            ],
            "usage": {"prompt_tokens": 24, "completion_tokens": 32, "total_tokens": 56},
        },
        separators=(",", ":"),
    )


def _fixed_sse() -> str:
    def chunk(choices: list[dict[str, Any]], usage: dict[str, int] | None = None) -> str:
        c: dict[str, Any] = {
            "id": "chatcmpl-fixed0123456789",
            "object": "chat.completion.chunk",
            "created": 1767225600,
            "model": MODEL,
            "choices": choices,
        }
        if usage is not None:
            c["usage"] = usage
        return "data: " + json.dumps(c, separators=(",", ":")) + "\n\n"

    out = [chunk([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])]
    for i, w in enumerate(_WORDS[:32]):
        out.append(chunk([{"index": 0, "delta": {"content": w if i == 0 else " " + w}, "finish_reason": None}]))
    out.append(chunk([{"index": 0, "delta": {}, "finish_reason": "length"}]))
    out.append(chunk([], {"prompt_tokens": 24, "completion_tokens": 32, "total_tokens": 56}))
    out.append("data: [DONE]\n\n")
    return "".join(out)


def _nginx_return(s: str) -> str:
    """`return 200 <s>;`, split over `set` variables: nginx caps one config token at ~4 KB."""
    assert "$" not in s and "'" not in s
    parts = [s[i : i + 2048] for i in range(0, len(s), 2048)]
    quoted = ["'" + p.replace("\\", "\\\\").replace("\n", "\\n") + "'" for p in parts]
    sets = " ".join(f"set $p{i} {q};" for i, q in enumerate(quoted))
    return f'{sets} return 200 "{"".join(f"$p{i}" for i in range(len(parts)))}";'


def nginx_conf(workdir: Path, port: int) -> Path:
    """One worker; /json/v1/* answers a fixed chat.completion, /sse/v1/* a fixed 32-token SSE stream.

    A model's base_url picks the body: `http://127.0.0.1:PORT/json/v1` or `.../sse/v1`. nginx reads and
    discards the request body and keeps connections alive indefinitely (no 1000-request recycling).
    """
    conf = f"""
worker_processes 1;
daemon off;
pid {workdir}/nginx.pid;
error_log {workdir}/nginx-error.log warn;
events {{ worker_connections 4096; multi_accept on; }}
http {{
  access_log off;
  client_body_temp_path {workdir}/body;
  keepalive_requests 10000000;
  keepalive_timeout 300s;
  client_max_body_size 8m;
  client_body_buffer_size 64k;
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    location /json/ {{ default_type application/json; {_nginx_return(_fixed_json())} }}
    location /sse/ {{ default_type text/event-stream; {_nginx_return(_fixed_sse())} }}
    location / {{ return 404; }}
  }}
}}
"""
    path = workdir / "nginx.conf"
    path.write_text(conf)
    return path


# ---------------------------------------------------------------- processes


def pinned(argv: list[str], cpus: str | None) -> list[str]:
    return ["taskset", "-c", cpus, *argv] if cpus else argv


class Procs:
    """Processes started by this benchmark, stopped by process-group id on exit."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def __enter__(self) -> Procs:
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        return self

    def __exit__(self, *exc: object) -> None:
        for name in list(self.procs):
            self.stop(name)

    def start(
        self,
        name: str,
        argv: list[str],
        cpus: str | None = None,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> subprocess.Popen[bytes]:
        log = open(self.workdir / f"{name}.log", "wb")  # noqa: SIM115 - the child writes it while it runs
        p = subprocess.Popen(
            pinned(argv, cpus),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            start_new_session=True,
        )
        self.procs[name] = p
        return p

    def sessions(self, *names: str) -> set[int]:
        """Session ids (= pids, each was started in its own session) of the named processes, or of all."""
        return {p.pid for n, p in self.procs.items() if not names or n in names}

    def stop(self, name: str, timeout: float = 15.0) -> None:
        p = self.procs.pop(name, None)
        if p is None or p.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(p.pid, sig)  # the group this benchmark created for the process
            except ProcessLookupError:
                return
            try:
                p.wait(wait)
                return
            except subprocess.TimeoutExpired:
                continue

    def log_tail(self, name: str, n: int = 2000) -> str:
        try:
            return (self.workdir / f"{name}.log").read_text(errors="replace")[-n:]
        except OSError:
            return ""


def wait_http(
    url: str, timeout: float, proc: subprocess.Popen[bytes] | None = None, headers: dict[str, str] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=2).read()
            return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f}s")


def post(url: str, body: bytes, key: str | None = None, timeout: float = 10) -> tuple[int, bytes]:
    headers = {"content-type": "application/json"}
    if key:
        headers["authorization"] = f"Bearer {key}"
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def start_nginx(procs: Procs, cpus: str | None) -> int:
    if shutil.which("nginx") is None:
        raise SystemExit("nginx is not installed (apt-get install nginx wrk)")
    port = free_port()
    d = procs.workdir / "nginx"
    (d / "body").mkdir(parents=True, exist_ok=True)
    conf = nginx_conf(d, port)
    p = procs.start("nginx", ["nginx", "-p", str(d), "-c", str(conf)], cpus=cpus)
    wait_http(f"http://127.0.0.1:{port}/json/v1/models", 10, p)
    return port


def start_cuirass(
    procs: Procs, name: str, upstreams: dict[str, str], workers: int, cpus: str | None
) -> tuple[str, str]:
    """A gateway serving model `m` (non-streaming upstream) and `m-stream`; returns (base url, API key)."""
    d = procs.workdir / name
    d.mkdir(parents=True, exist_ok=True)
    cfg = d / "cuirass.yaml"
    cfg.write_text(
        json.dumps({"models": [{"name": n, "upstream": {"base_url": u, "model": MODEL}} for n, u in upstreams.items()]})
    )  # JSON is YAML
    out = subprocess.run(
        [str(CUIRASS), "accounts", "create", "bench", "--with-key", "--json", "--data-dir", str(d)],
        check=True,
        capture_output=True,
    )
    key = json.loads(out.stdout)["key"]
    port = free_port()
    p = procs.start(
        name,
        [
            str(CUIRASS),
            "serve",
            "--config",
            str(cfg),
            "--data-dir",
            str(d),
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        cpus=cpus,
        env={"CUIRASS_ADMIN_KEY": "sk-bench-admin-0123456789"},
    )
    wait_http(f"http://127.0.0.1:{port}/health/readiness", 60, p)
    return f"http://127.0.0.1:{port}", key


def litellm_available() -> bool:
    return (LITELLM_VENV / "bin" / "litellm").exists()


def start_litellm(procs: Procs, name: str, upstreams: dict[str, str], cpus: str | None) -> tuple[str, str]:
    """LiteLLM proxy as PEERS.md runs it: one worker, local cost map, master key, no database."""
    d = procs.workdir / name
    d.mkdir(parents=True, exist_ok=True)
    key = "sk-bench-litellm-master"
    models = "\n".join(
        f'  - model_name: {n}\n    litellm_params: {{model: openai/{MODEL}, api_base: "{u}", api_key: x}}'
        for n, u in upstreams.items()
    )
    cfg = d / "litellm.yaml"
    cfg.write_text(
        f"model_list:\n{models}\ngeneral_settings:\n  master_key: {key}\nlitellm_settings:\n  telemetry: false\n"
    )
    port = free_port()
    env = {
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_LOG": "ERROR",
        "LITELLM_TELEMETRY": "False",
        "DISABLE_ADMIN_UI": "True",
        "PATH": f"{LITELLM_VENV / 'bin'}:{os.environ.get('PATH', '')}",
    }
    p = procs.start(
        name,
        [
            str(LITELLM_VENV / "bin" / "litellm"),
            "--config",
            str(cfg),
            "--port",
            str(port),
            "--host",
            "127.0.0.1",
            "--num_workers",
            "1",
        ],
        cpus=cpus,
        env=env,
        cwd=d,
    )
    wait_http(f"http://127.0.0.1:{port}/health/liveliness", 180, p)
    return f"http://127.0.0.1:{port}", key


# ---------------------------------------------------------------- CPU accounting

HZ = os.sysconf("SC_CLK_TCK")


def _proc_times() -> dict[int, tuple[int, int]]:
    """pid -> (session id, utime + stime in clock ticks) for every process."""
    out: dict[int, tuple[int, int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat", "rb") as f:
                raw = f.read()
        except OSError:
            continue
        fields = raw[raw.rindex(b")") + 2 :].split()
        out[int(d)] = (int(fields[3]), int(fields[11]) + int(fields[12]))
    return out


def _busy_ticks() -> int:
    with open("/proc/stat", "rb") as f:
        cpu = f.readline().split()
    return int(cpu[1]) + int(cpu[2]) + int(cpu[3])  # user + nice + system


class CpuMeter:
    """CPU used during a run by the processes of given sessions (a target), and by everything that is
    not this benchmark (other work on the machine, which skews results on a 2-core box)."""

    def __init__(self, target_sessions: set[int], own_sessions: set[int]) -> None:
        self.target, self.own = target_sessions, own_sessions | {os.getsid(0)}

    def __enter__(self) -> CpuMeter:
        self.t0, self.b0, self.p0 = time.monotonic(), _busy_ticks(), _proc_times()
        return self

    def __exit__(self, *exc: object) -> None:
        dt, busy, p1 = time.monotonic() - self.t0, _busy_ticks() - self.b0, _proc_times()
        target = own = 0
        for pid, (sid, ticks) in p1.items():
            delta = ticks - self.p0.get(pid, (sid, 0))[1]
            if sid in self.target:
                target += delta
            if sid in self.target or sid in self.own:
                own += delta
        self.target_cpu_s = target / HZ
        self.foreign_cores = max(0.0, (busy - own) / HZ / dt)


# ---------------------------------------------------------------- wrk


def wrk(
    url: str,
    body: bytes,
    key: str | None,
    connections: int,
    duration_s: float,
    cpus: str | None,
    rate: float | None = None,
    threads: int = 1,
    timeout_s: int = 10,
    target: set[int] | None = None,
    own: set[int] | None = None,
    keys: list[str] | None = None,
) -> dict[str, Any]:
    """One wrk run posting `body`; closed loop, or about `rate` req/s in total when given (exponential
    think time per connection, wrk's delay(); latency is measured from the send, as in wrk2's -R mode
    at low load). Returns requests, errors, rate and latency percentiles in ms."""
    with tempfile.TemporaryDirectory() as td:
        bf, of = Path(td) / "body.json", Path(td) / "out.json"
        bf.write_bytes(body)
        env = {**os.environ, "WRK_BODY_FILE": str(bf), "WRK_OUT": str(of), "WRK_AUTH": key or ""}
        if keys:  # each request takes the next key: load from many accounts
            env["WRK_AUTHS"] = ",".join(keys)
        if rate:
            env["WRK_MEAN_DELAY_MS"] = str(1000.0 * connections / rate)
        argv = [
            "wrk",
            "-t",
            str(threads),
            "-c",
            str(connections),
            "-d",
            f"{max(1, round(duration_s))}s",
            "--timeout",
            f"{timeout_s}s",
            "-s",
            str(WRK_SCRIPT),
            url,
        ]
        with CpuMeter(target or set(), own or set()) as meter:
            r = subprocess.run(pinned(argv, cpus), env=env, capture_output=True, timeout=duration_s + timeout_s + 30)
        if r.returncode != 0 or not of.exists():
            raise RuntimeError(
                f"wrk failed (exit {r.returncode}): {(r.stdout + r.stderr).decode(errors='replace')[-500:]}"
            )
        out = json.loads(of.read_text())
    errors = sum(out["errors"].values())
    return {
        "connections": connections,
        "offered_rate": rate,
        "duration_s": out["duration_us"] / 1e6,
        "requests": out["requests"],
        "errors": out["errors"],
        "error_count": errors,
        "rps": out["requests"] / (out["duration_us"] / 1e6),
        "p50_ms": out["p50_us"] / 1000,
        "p90_ms": out["p90_us"] / 1000,
        "p99_ms": out["p99_us"] / 1000,
        "mean_ms": out["mean_us"] / 1000,
        "max_ms": out["max_us"] / 1000,
        "target_cpu_us_per_req": 1e6 * meter.target_cpu_s / max(1, out["requests"]),
        "foreign_cores": round(meter.foreign_cores, 2),
    }
