"""Fixtures for the detection tests: seeded, real-ish traffic (see scenario.py)."""

from __future__ import annotations

import pytest

from tests.detect import scenario


@pytest.fixture(scope="session")
def benign_events() -> list:
    return scenario.by_time(scenario.benign(60, seed=1))


@pytest.fixture(scope="session")
def hydra_events() -> list:
    return scenario.by_time(scenario.attackers(12, seed=2, per_day=40))


@pytest.fixture(scope="session")
def mixed_events(benign_events: list, hydra_events: list) -> list:
    return scenario.by_time(benign_events + hydra_events)
