"""AdamW with decoupled weight-decay groups, and a warm-up + cosine learning-rate schedule."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

# PyTorch's three AdamW implementations; "auto" lets PyTorch choose (foreach on GPU, else the
# for-loop). The arguments each one takes:
IMPLEMENTATIONS: dict[str, dict[str, bool | None]] = {
    "auto": {},
    "for-loop": {"foreach": False, "fused": False},
    "foreach": {"foreach": True, "fused": False},
    "fused": {"foreach": False, "fused": True},
}


@dataclass(frozen=True)
class OptimizerConfig:
    lr: float = 1e-3
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = 1e-8
    implementation: str = "auto"

    def __post_init__(self) -> None:
        object.__setattr__(self, "betas", tuple(self.betas))
        if self.implementation not in IMPLEMENTATIONS:
            raise ValueError(
                f"optimizer.implementation={self.implementation!r}: must be one of "
                f"{', '.join(IMPLEMENTATIONS)}"
            )
        if not self.lr > 0:
            raise ValueError(f"optimizer.lr={self.lr}: must be > 0")
        if self.weight_decay < 0:
            raise ValueError(f"optimizer.weight_decay={self.weight_decay}: must be >= 0")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"optimizer.betas={list(self.betas)}: must be two numbers in [0, 1)")


@dataclass(frozen=True)
class ScheduleConfig:
    """Linear warm-up from 0 to the peak rate, cosine decay to `min_lr_ratio`·peak, then flat.

    Warm-up lasts `warmup_ratio` of `decay_steps`, so short runs still reach the peak rate;
    `warmup_steps`, when set, fixes it in steps instead.
    """

    decay_steps: int = 2000
    warmup_ratio: float = 0.1
    warmup_steps: int | None = None
    min_lr_ratio: float = 0.1

    def __post_init__(self) -> None:
        if self.decay_steps <= 0:
            raise ValueError(f"scheduler.decay_steps={self.decay_steps}: must be > 0")
        if not 0 <= self.warmup_ratio < 1:
            raise ValueError(f"scheduler.warmup_ratio={self.warmup_ratio}: must be in [0, 1)")
        if self.warmup_steps is not None and not 0 <= self.warmup_steps < self.decay_steps:
            raise ValueError(
                f"scheduler.warmup_steps={self.warmup_steps}: must be >= 0 and below "
                f"decay_steps={self.decay_steps} (the run's max_steps); or use warmup_ratio"
            )
        if not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(f"scheduler.min_lr_ratio={self.min_lr_ratio}: must be in [0, 1]")

    @property
    def warmup_length(self) -> int:
        if self.warmup_steps is not None:
            return self.warmup_steps
        return round(self.warmup_ratio * self.decay_steps)

    def lr_factor(self, step: int) -> float:
        """Multiplier of the peak learning rate at optimizer step `step` (0-based)."""
        warmup = self.warmup_length
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, self.decay_steps - warmup))
        cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
        return self.min_lr_ratio + (1.0 - self.min_lr_ratio) * cosine


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Decay only the weight matrices of linear layers; never norms, biases or embeddings."""
    linear_weights = {id(m.weight) for m in model.modules() if isinstance(m, nn.Linear)}
    embeddings = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    # A tied head shares the embedding matrix: it is treated as an embedding, as in GPT-2.
    decay_ids = linear_weights - embeddings
    decay, no_decay = [], []
    for p in model.parameters():
        (decay if id(p) in decay_ids else no_decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def build_optimizer(model: nn.Module, config: OptimizerConfig) -> torch.optim.AdamW:
    return torch.optim.AdamW(
        parameter_groups(model, config.weight_decay),
        lr=config.lr,
        betas=config.betas,
        eps=config.eps,
        **IMPLEMENTATIONS[config.implementation],
    )
