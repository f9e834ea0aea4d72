"""The detector's hot modules, compiled to C extensions with mypyc where the build did so.

Every request passes through digesting (`detect.digest`, `detect.sketch`, `detect.phrases`) and
per-account scoring (`detect.evidence`, `detect.scoring`, `detect.signals`). They are ordinary
type-checked Python; `make` (tools/compile.py, whenever one of them changed) compiles them with mypyc,
the compiler mypy itself is built with, into extension modules beside their sources. Python imports an
extension module before the source of the same name, so compiled and pure runs give the same results
(the history replay's report is byte-identical) and only the speed differs: about 2.3x on scoring, 1.1x on
digesting (BENCHMARKS "Compiled hot modules"). Without a C compiler, or with CUIRASS_PURE=1, the
sources run as they are.

A module whose source changed after it was compiled would run stale code, so `status()` reports it
and the test suite refuses to start until `make compile` has rebuilt it.
"""

from __future__ import annotations

import importlib.machinery
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
MODULES = (
    "detect/evidence.py",
    "detect/scoring.py",
    "detect/digest.py",
    "detect/sketch.py",
    "detect/phrases.py",
    "detect/signals/__init__.py",
    "detect/signals/age.py",
    "detect/signals/base.py",
    "detect/signals/coverage.py",
    "detect/signals/elicitation.py",
    "detect/signals/infra.py",
    "detect/signals/params.py",
    "detect/signals/phrasing.py",
    "detect/signals/pivot.py",
    "detect/signals/shape.py",
    "detect/signals/templates.py",
    "detect/signals/timing.py",
)  # paths under src/cuirass


def _extension(source: Path) -> Path | None:
    stem = source.with_suffix("")
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        candidate = stem.with_name(stem.name + suffix)
        if candidate.exists():
            return candidate
    return None


def status() -> dict[str, str]:
    """Each hot module's state: "compiled", "pure" (no extension: the source runs) or "stale" (an
    extension older than its source, which Python would import instead of the newer source)."""
    out = {}
    for name in MODULES:
        source = PACKAGE / name
        ext = _extension(source)
        if ext is None:
            out[name] = "pure"
        else:
            out[name] = "stale" if ext.stat().st_mtime < source.stat().st_mtime else "compiled"
    return out
