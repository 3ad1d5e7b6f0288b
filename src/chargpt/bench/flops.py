"""Model FLOPs utilisation (MFU), from the model's training FLOPs per token
(`chargpt.model.parameters.training_flops_per_token`, which explains the formula)."""

from __future__ import annotations


def mfu(flops_per_token: float, tokens_per_s: float, peak_flops_per_s: float) -> float:
    """Share of the peak rate spent on the model's own arithmetic (0..1)."""
    return flops_per_token * tokens_per_s / peak_flops_per_s
