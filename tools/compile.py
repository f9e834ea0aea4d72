"""Compile the detector's hot modules (cuirass.compiled.MODULES) with mypyc, in place beside their sources.

`make` runs this before it serves, tests or benchmarks; it rebuilds them all when one is missing or older than
its source (cuirass.compiled.status), and does nothing otherwise. By hand:

    .venv/bin/python tools/compile.py           # build (about a minute on 2 cores)
    CUIRASS_PURE=1 .venv/bin/python tools/compile.py   # remove the extensions: the sources run as they are

mypyc (shipped with mypy, a development dependency) type-checks the modules with the project's mypy
configuration and emits C that setuptools builds with the system's C compiler. Without one the build warns
and the sources run as they are, unless CUIRASS_REQUIRE_COMPILED is set (CI), which makes it an error.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from cuirass.compiled import MODULES, PACKAGE, status  # noqa: E402  (the source tree, not an installed copy)


def clean() -> None:
    """Remove every extension the build put in the source tree (modules and mypyc's shared runtime)."""
    for ext in [*PACKAGE.rglob("*.so"), *PACKAGE.parent.glob("*__mypyc*.so")]:
        ext.unlink()


def main() -> int:
    if os.environ.get("CUIRASS_PURE"):
        clean()
        print("CUIRASS_PURE is set: the hot modules run as Python sources")
        return 0
    if set(status().values()) == {"compiled"}:
        return 0  # every extension is newer than its source
    clean()
    from mypyc.build import mypycify
    from setuptools import setup

    os.chdir(ROOT)  # mypyc reads the project's [tool.mypy] from pyproject.toml
    sources = [f"src/cuirass/{name}" for name in MODULES]
    try:  # a fresh build directory each time: no step can judge an old object file current
        with tempfile.TemporaryDirectory(prefix="cuirass-mypyc-") as build:
            setup(
                name="cuirass-compiled",
                package_dir={"": "src"},
                ext_modules=mypycify(sources, opt_level="3", target_dir=f"{build}/c"),
                script_args=["--quiet", "build_ext", "--inplace", "--build-temp", f"{build}/temp"],
            )
    except (SystemExit, Exception) as exc:  # noqa: BLE001  (no compiler, or a compile error: run the sources)
        clean()
        print(f"WARNING: compiling the hot modules failed ({exc}); they run as Python, slower", file=sys.stderr)
        return 1 if os.environ.get("CUIRASS_REQUIRE_COMPILED") else 0
    states = status()
    if set(states.values()) != {"compiled"}:
        print(f"not every hot module was compiled: {states}", file=sys.stderr)
        return 1
    print(f"compiled {len(states)} hot modules with mypyc")
    return 0


if __name__ == "__main__":
    sys.exit(main())
