"""Fixtures for the lab tests: one small generated traffic file shared by the whole session."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import orjson
import pytest

from cuirass.lab.traffic import PRESETS, TrafficConfig, generate

SMALL = TrafficConfig(
    seed=7,
    benign_accounts=120,
    days=2.0,
    campaigns=(
        dataclasses.replace(PRESETS["naive"], accounts=3),
        dataclasses.replace(PRESETS["hydra"], accounts=40, shared_infra=0.5),
        dataclasses.replace(PRESETS["stealth"], accounts=30, benign_mix=0.5),
        dataclasses.replace(PRESETS["agentic"], accounts=10),
        dataclasses.replace(PRESETS["rubric"], accounts=10),
    ),
)


@pytest.fixture(scope="session")
def small_traffic(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], list[dict[str, Any]]]:
    """(events file, labels, decoded events) of the SMALL config."""
    out = tmp_path_factory.mktemp("traffic") / "small.jsonl"
    labels = generate(SMALL, out)
    events = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    return out, labels, events
