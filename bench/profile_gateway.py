"""Profile one gateway worker under load: nginx upstream, wrk at fixed concurrency, py-spy sampling.

    .venv/bin/python bench/profile_gateway.py [--seconds 15] [--connections 32] [--stream] [--out DIR]

Writes py-spy's collapsed stacks (flamegraph.pl / speedscope can read them) to DIR (default bench/results/profile-*), and
prints the top functions by self time and by inclusive time (share of samples of non-idle threads).
"""

from __future__ import annotations

import argparse
import collections
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import BENCH, PYSPY, Procs, chat_body, start_cuirass, start_nginx, wrk


def summarize(collapsed: Path, top: int = 25) -> str:
    """Self and inclusive sample shares per function from py-spy's `--format raw` output."""
    self_t: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack:
            continue
        count = int(n)
        frames = [f for f in stack.split(";") if not f.startswith("process ") and not f.startswith("thread ")]
        if not frames:
            continue
        total += count
        self_t[_short(frames[-1])] += count
        for f in {_short(f) for f in frames}:
            incl[f] += count
    lib: collections.Counter[str] = collections.Counter()
    for f, c in self_t.items():
        lib[_library(f)] += c
    lines = [f"{total} samples", "", "self % by package"]
    lines += [f"{100 * c / total:6.1f}  {f}" for f, c in lib.most_common()]
    lines += ["", "self %  function (file)"]
    lines += [f"{100 * c / total:6.1f}  {f}" for f, c in self_t.most_common(top)]
    lines += ["", "incl %  function"]
    lines += [f"{100 * c / total:6.1f}  {f}" for f, c in incl.most_common(top * 2)]
    return "\n".join(lines)


_LIBS = (
    "uvicorn",
    "starlette",
    "aiohttp",
    "sqlalchemy",
    "prometheus_client",
    "asyncio",
    "orjson",
    "yarl",
    "multidict",
    "cuirass",
    "threading",
    "logging",
    "json",
    "uuid",
    "click",
)


def _library(short: str) -> str:
    loc = short.rsplit("(", 1)[-1]
    for lib in _LIBS:
        if loc.startswith(lib + "/") or f"/{lib}/" in loc:
            return lib
    if any(
        loc.startswith(m)
        for m in (
            "proxy.py",
            "app.py",
            "exchange.py",
            "sse.py",
            "routing.py",
            "validate.py",
            "ratelimit.py",
            "metrics.py",
            "errors.py",
            "admin.py",
        )
    ):
        return "cuirass"
    return "other: " + loc.rstrip(")")


def _short(frame: str) -> str:
    # "func (path/to/module.py:123)" -> "func (module.py)" so lines of one function aggregate
    name, _, loc = frame.partition(" (")
    path = loc.rstrip(")").rsplit(":", 1)[0]
    parts = path.split("/")
    return f"{name} ({'/'.join(parts[-2:])})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=15)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--stream", action="store_true")
    ap.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    ap.add_argument("--gil", action="store_true", help="sample only the thread holding the GIL")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    out = (
        args.out
        or BENCH / "results" / f"profile-{'stream' if args.stream else 'json'}-{time.strftime('%Y%m%d-%H%M%S')}"
    )
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="cuirass-prof-") as td, Procs(Path(td)) as procs:
        up = start_nginx(procs, "0")
        base, key = start_cuirass(
            procs,
            "cuirass",
            {"m": f"http://127.0.0.1:{up}/json/v1", "m-stream": f"http://127.0.0.1:{up}/sse/v1"},
            1,
            "1",
        )
        pid = procs.procs["cuirass"].pid
        body = chat_body(args.stream, "m-stream" if args.stream else "m")
        result: dict[str, object] = {}
        load = threading.Thread(
            target=lambda: result.update(
                wrk(base + "/v1/chat/completions", body, key, args.connections, args.seconds + 3, "0")
            )
        )
        load.start()
        time.sleep(1.5)
        # cuirass is exec'd by taskset, so the pid is the gateway's python process itself.
        subprocess.run(
            [
                str(PYSPY),
                "record",
                "--pid",
                str(pid),
                "--duration",
                str(args.seconds),
                "--rate",
                str(args.rate),
                "--format",
                "raw",
                "--output",
                str(out / "stacks.txt"),
                "--nonblocking",
                *(["--gil"] if args.gil else []),
            ],
            check=True,
            capture_output=True,
        )
        load.join()
    text = summarize(out / "stacks.txt")
    (out / "summary.txt").write_text(text + "\n")
    print(f"load: {result.get('rps', 0):.0f} req/s, p50 {result.get('p50_ms')} ms (while sampled)")
    print(text)
    print(f"\nfiles in {out}")


if __name__ == "__main__":
    main()
