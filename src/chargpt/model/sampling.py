"""Choosing the next token from logits: temperature, top-k and nucleus (top-p) sampling."""

from __future__ import annotations

import torch
from torch import Tensor

from chargpt.errors import SettingError


def check_sampling_args(
    vocab_size: int, temperature: float, top_k: int | None, top_p: float | None
) -> None:
    if temperature < 0:
        raise SettingError(f"temperature={temperature}: must be >= 0 (0 means greedy decoding)")
    if top_k is not None and not 1 <= top_k <= vocab_size:
        raise SettingError(f"top_k={top_k}: must be between 1 and the vocabulary size {vocab_size}")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise SettingError(f"top_p={top_p}: must be in (0, 1]")


def top_k_filter(logits: Tensor, k: int) -> Tensor:
    """Set every logit below the k-th largest of its row to -inf."""
    kth_largest = torch.topk(logits, k, dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth_largest, float("-inf"))


def top_p_filter(logits: Tensor, p: float) -> Tensor:
    """Keep the smallest set of tokens whose probabilities sum to at least p (the nucleus)."""
    sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
    cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
    # Drop a token when those ranked above it already reach p; the top token always stays.
    drop_sorted = (cumulative - sorted_logits.softmax(dim=-1)) >= p
    drop = drop_sorted.scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


def sample_next(
    logits: Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Pick one token per row of `logits` (B, V); returns (B, 1). temperature 0 is greedy."""
    if temperature == 0:
        return logits.argmax(dim=-1, keepdim=True)
    logits = logits / temperature
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    if top_p is not None and top_p < 1.0:
        logits = top_p_filter(logits, top_p)
    probs = logits.softmax(dim=-1)
    return torch.multinomial(probs, num_samples=1, generator=generator)
