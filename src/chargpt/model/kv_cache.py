"""The keys and values that incremental decoding keeps between calls of `GPT.forward`.

Shapes: B batch, nkv key/value heads (n_kv_head, fewer than the query heads under grouped-query
attention), hs head size; each layer has room for block_size positions.
"""

from __future__ import annotations

import torch
from torch import Tensor

from chargpt.model.config import GPTConfig


class LayerKVCache:
    """One layer's keys and values for incremental decoding, room for block_size positions."""

    def __init__(self, keys: Tensor, values: Tensor) -> None:
        self.keys, self.values = keys, values  # (B, nkv, block_size, hs) each
        self.length = 0  # positions filled so far

    def append(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Store k, v (B, nkv, T, hs) after the filled positions; return all keys and values."""
        start, end = self.length, self.length + k.size(2)
        self.keys[:, :, start:end] = k
        self.values[:, :, start:end] = v
        self.length = end
        return self.keys[:, :, :end], self.values[:, :, :end]  # (B, nkv, end, hs)


class KVCache:
    """Every layer's keys and values: what `GPT.forward(idx, cache=...)` reads and extends.

    The new tokens of each call take the positions after those already cached, so a prompt can
    be fed at once (prefill) and the tokens after it one at a time.
    """

    def __init__(
        self,
        config: GPTConfig,
        batch_size: int,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        shape = (batch_size, config.kv_heads, config.block_size, config.head_size)
        self.layers = [
            LayerKVCache(
                torch.empty(shape, device=device, dtype=dtype),
                torch.empty(shape, device=device, dtype=dtype),
            )
            for _ in range(config.n_layer)
        ]

    @property
    def nbytes(self) -> int:
        """Memory the keys and values take, every layer together."""
        return sum(t.nbytes for layer in self.layers for t in (layer.keys, layer.values))

    @property
    def length(self) -> int:
        return self.layers[0].length

    def reset(self) -> None:
        """Forget every cached position (the memory is kept and overwritten)."""
        for layer in self.layers:
            layer.length = 0
