"""A tiny randomly initialised GPT-2 with its own tokenizer, written once per session to a temp dir."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads: no spinning threads on shared cores
pytest.importorskip("torch")
pytest.importorskip("transformers")


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from cuirass.engine.tiny import write_tiny_model

    return write_tiny_model(tmp_path_factory.mktemp("tiny-gpt2"))


@pytest.fixture(scope="session")
def tiny_lm(tiny_dir: Path):  # type: ignore[no-untyped-def]
    from cuirass.engine.loader import load_model

    return load_model(str(tiny_dir), device="cpu")
