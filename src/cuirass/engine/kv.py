"""Key/value caches as plain per-layer (keys, values) tensors: pad rows on the left, stack them, split them.

A cache here is transformers' DynamicCache; `layers` gives its [batch, heads, length, dim] tensors per
layer. Rows of different lengths are left-padded to a common length and stacked into one batch (the
attention mask hides the pads), which is how the batch (batch.py) and the antidistill proxies
(cuirass.respond.logit.antidistill) advance several sequences in one forward pass.
"""

from __future__ import annotations

from typing import Any

import torch

KV = list[tuple[torch.Tensor, torch.Tensor]]  # per layer: (keys, values), each [batch, heads, length, dim]


def layers(cache: Any) -> KV:
    """The cache's per-layer (keys, values)."""
    return [(layer.keys, layer.values) for layer in cache.layers]


def from_layers(kv: KV) -> Any:
    """A cache holding these per-layer (keys, values)."""
    from transformers import DynamicCache

    return DynamicCache(kv)


def pad_left(t: torch.Tensor, n: int, dim: int) -> torch.Tensor:
    """`t` with n zeros in front along `dim`."""
    if n == 0:
        return t
    shape = list(t.shape)
    shape[dim] = n
    return torch.cat([t.new_zeros(shape), t], dim=dim)


def stack(rows: list[KV], pads: list[int]) -> Any:
    """One cache from several rows' per-layer (keys, values), row r left-padded by pads[r] positions."""

    def cat(i: int, j: int) -> torch.Tensor:
        """Layer i's keys (j=0) or values (j=1) of every row, padded and stacked."""
        return torch.cat([pad_left(row[i][j], pad, 2) for row, pad in zip(rows, pads, strict=True)])

    return from_layers([(cat(i, 0), cat(i, 1)) for i in range(len(rows[0]))])


def stackable(cache: Any) -> bool:
    """A plain key/value cache per layer, [batch, heads, length, dim]: rows can be padded and stacked."""
    per_layer = getattr(cache, "layers", None)
    if not per_layer:
        return False
    return all(hasattr(x, "keys") and not getattr(x, "is_sliding", False) for x in per_layer)
