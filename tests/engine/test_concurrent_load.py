"""A principal and its decoy load at the same time when a gateway starts: that must not corrupt either."""

from __future__ import annotations

import threading

import pytest

pytest.importorskip("transformers")

from cuirass.engine.loader import load_model


def test_two_models_load_concurrently() -> None:
    errors: list[BaseException] = []

    def load(path: str) -> None:
        try:
            load_model(path)
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    for _ in range(3):
        threads = [threading.Thread(target=load, args=(p,)) for p in ("builtin:reference", "builtin:decoy")]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []
