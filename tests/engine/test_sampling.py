"""The sampler: draws follow softmax(scores / T) inside the top-p set; a seed fixes the draw."""

from __future__ import annotations

import collections

import pytest
import torch
from scipy.stats import chisquare

from cuirass.engine.sampling import pick

N = 10_000
SCORES = torch.tensor([[0.0, 1.0, 2.0, 3.0, -1.0]])


def _draws(temperature: float, top_p: float) -> collections.Counter[int]:
    return collections.Counter(pick(SCORES, temperature, top_p, torch.Generator().manual_seed(i)) for i in range(N))


@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.0])
def test_draws_follow_the_softmax_at_the_temperature(temperature: float) -> None:
    expected = torch.softmax(SCORES[0].double() / temperature, dim=0) * N
    seen = _draws(temperature, 1.0)
    assert chisquare([seen[i] for i in range(5)], expected.tolist()).pvalue > 1e-3


def test_top_p_keeps_the_smallest_top_set_and_renormalises() -> None:
    p = torch.softmax(SCORES[0].double(), dim=0)  # sorted: 3 (0.64), 2 (0.24), 1 (0.09), ...: 0.7 keeps {3, 2}
    seen = _draws(1.0, 0.7)
    assert set(seen) == {2, 3}
    kept = p[[2, 3]] / p[[2, 3]].sum() * N
    assert chisquare([seen[2], seen[3]], kept.tolist()).pvalue > 1e-3


def test_greedy_and_seeded_draws_repeat() -> None:
    assert pick(SCORES, 0.0, 1.0, None) == 3
    draws = [pick(SCORES * 0.1, 1.0, 1.0, torch.Generator().manual_seed(7)) for _ in range(5)]
    assert len(set(draws)) == 1
