"""The optimizers (AdamW; Muon with AdamW) with decoupled weight-decay groups, and a warm-up +
cosine learning-rate schedule."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from chargpt.errors import SettingError

# PyTorch's three AdamW implementations and the arguments each one takes. "auto" is the fastest
# one the parameters' device has: fused (one kernel for all parameters) where PyTorch has the
# kernel, else foreach. Every one works with mixed precision and clipping (see the module's
# `configure_gradient_clipping`).
IMPLEMENTATIONS: dict[str, dict[str, bool]] = {
    "for-loop": {"foreach": False, "fused": False},
    "foreach": {"foreach": True, "fused": False},
    "fused": {"foreach": False, "fused": True},
}
IMPLEMENTATION_CHOICES = ("auto", *IMPLEMENTATIONS)
FUSED_DEVICE_TYPES = ("cpu", "cuda")


def resolve_implementation(implementation: str, device_type: str) -> str:
    """The implementation `implementation` means for parameters on `device_type`."""
    if implementation != "auto":
        return implementation
    return "fused" if device_type in FUSED_DEVICE_TYPES else "foreach"


ALGORITHMS = ("adamw", "muon")
MUON_LR_ADJUSTMENTS = ("original", "match_rms_adamw")


@dataclass(frozen=True)
class OptimizerConfig:
    """`algorithm` adamw: AdamW for every parameter. muon: torch.optim.Muon for the 2-D matrices
    of the blocks (attention and MLP weights) at `muon_lr`, and AdamW at `lr` for the rest
    (embeddings, head, norms, biases); `weight_decay` applies to both, decoupled and scaled by
    each part's own rate (Muon's per-step decay is muon_lr·weight_decay)."""

    lr: float = 2e-3
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = 1e-8
    implementation: str = "auto"
    algorithm: str = "adamw"
    muon_lr: float = 0.05
    muon_momentum: float = 0.95
    # Muon's update scale per matrix shape (A, B): "original" (Keller Jordan's) sqrt(max(1, A/B));
    # "match_rms_adamw" (Moonshot's) 0.2·sqrt(max(A, B)), which matches AdamW's update size.
    muon_adjust_lr: str = "original"

    def __post_init__(self) -> None:
        for key, allowed in (
            ("algorithm", ALGORITHMS),
            ("muon_adjust_lr", MUON_LR_ADJUSTMENTS),
        ):
            if getattr(self, key) not in allowed:
                raise SettingError(
                    f"optimizer.{key}={getattr(self, key)!r}: must be one of {', '.join(allowed)}"
                )
        for key in ("muon_lr", "muon_momentum"):
            _check_finite_number(f"optimizer.{key}", getattr(self, key))
        if not self.muon_lr > 0:
            raise SettingError(f"optimizer.muon_lr={self.muon_lr}: must be > 0")
        if not 0 <= self.muon_momentum < 1:
            raise SettingError(f"optimizer.muon_momentum={self.muon_momentum}: must be in [0, 1)")
        if self.implementation not in IMPLEMENTATION_CHOICES:
            raise SettingError(
                f"optimizer.implementation={self.implementation!r}: must be one of "
                f"{', '.join(IMPLEMENTATION_CHOICES)}"
            )
        for key in ("lr", "weight_decay", "eps"):
            _check_finite_number(f"optimizer.{key}", getattr(self, key))
        if not self.lr > 0:
            raise SettingError(f"optimizer.lr={self.lr}: must be > 0")
        if self.weight_decay < 0:
            raise SettingError(f"optimizer.weight_decay={self.weight_decay}: must be >= 0")
        if not self.eps > 0:
            raise SettingError(f"optimizer.eps={self.eps}: must be > 0 (AdamW's default is 1e-8)")
        betas = self.betas
        if (
            isinstance(betas, str)
            or not hasattr(betas, "__len__")
            or len(betas) != 2
            or not all(_is_number(b) and 0 <= b < 1 for b in betas)
        ):
            shown = list(betas) if isinstance(betas, tuple | list) else betas
            raise SettingError(f"optimizer.betas={shown!r}: must be two numbers in [0, 1)")
        object.__setattr__(self, "betas", tuple(betas))


@dataclass(frozen=True)
class ScheduleConfig:
    """Linear warm-up from 0 to the peak rate, cosine decay to `min_lr_ratio`·peak, then flat.

    Warm-up lasts `warmup_ratio` of `decay_steps`, so short runs still reach the peak rate;
    `warmup_steps`, when set, fixes it in steps instead.
    """

    decay_steps: int  # run.py: trainer.max_steps
    warmup_ratio: float = 0.1
    warmup_steps: int | None = None
    min_lr_ratio: float = 0.1

    def __post_init__(self) -> None:
        for key in ("decay_steps", "warmup_steps"):
            value = getattr(self, key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise SettingError(f"scheduler.{key}={value!r}: must be a whole number of steps")
        for key in ("warmup_ratio", "min_lr_ratio"):
            _check_finite_number(f"scheduler.{key}", getattr(self, key))
        if self.decay_steps <= 0:
            raise SettingError(f"scheduler.decay_steps={self.decay_steps}: must be > 0")
        if not 0 <= self.warmup_ratio < 1:
            raise SettingError(f"scheduler.warmup_ratio={self.warmup_ratio}: must be in [0, 1)")
        if self.warmup_steps is not None and not 0 <= self.warmup_steps < self.decay_steps:
            raise SettingError(
                f"scheduler.warmup_steps={self.warmup_steps}: must be >= 0 and below "
                f"decay_steps={self.decay_steps} (the run's max_steps); or use warmup_ratio"
            )
        if not 0 <= self.min_lr_ratio <= 1:
            raise SettingError(f"scheduler.min_lr_ratio={self.min_lr_ratio}: must be in [0, 1]")

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


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_finite_number(key: str, value: object) -> None:
    if not _is_number(value) or not math.isfinite(value):
        raise SettingError(f"{key}={value!r}: must be a finite number")


# The groups `parameter_groups` builds, in order: the names their learning rates are logged by.
DECAY_GROUPS = ("decay", "no_decay")
MUON_GROUP = "muon"
# What each kind of group keeps per parameter: resuming checks a saved state against these.
STATE_KEYS = {
    "adamw": frozenset({"step", "exp_avg", "exp_avg_sq"}),
    MUON_GROUP: frozenset({"momentum_buffer"}),
}


def parameter_groups(
    model: nn.Module, weight_decay: float, exclude: frozenset[int] = frozenset()
) -> list[dict]:
    """Decay only the weight matrices of linear layers; never norms, biases or embeddings.
    Parameters whose id is in `exclude` (Muon's) are left out."""
    linear_weights = {id(m.weight) for m in model.modules() if isinstance(m, nn.Linear)}
    embeddings = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    # A tied head shares the embedding matrix: it is treated as an embedding, as in GPT-2.
    decay_ids = linear_weights - embeddings
    decay, no_decay = [], []
    for p in model.parameters():
        if id(p) not in exclude:
            (decay if id(p) in decay_ids else no_decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay, "name": DECAY_GROUPS[0]},
        {"params": no_decay, "weight_decay": 0.0, "name": DECAY_GROUPS[1]},
    ]


def hidden_matrices(model: nn.Module) -> list[nn.Parameter]:
    """The weights of the Linear layers inside the blocks: what Muon orthogonalises. The
    embedding and the head (tied or not) are not hidden matrices and stay with AdamW."""
    return [
        module.weight
        for name, module in model.named_modules()
        if name.startswith("blocks.") and isinstance(module, nn.Linear)
    ]


def parameter_group_name(group: dict, index: int) -> str:
    """A parameter group's name (`decay`, `no_decay`, `muon`): the one it was built with, else
    (an optimizer restored from a checkpoint saved before groups had names) by its place."""
    name = group.get("name")
    if isinstance(name, str) and name:
        return name
    return DECAY_GROUPS[index] if index < len(DECAY_GROUPS) else f"group{index}"


def group_state_keys(group: dict) -> frozenset[str]:
    """What the optimizer keeps per parameter of `group`."""
    return STATE_KEYS[MUON_GROUP if group.get("name") == MUON_GROUP else "adamw"]


class MuonWithAdamW(torch.optim.Optimizer):
    """Muon and AdamW stepped as one optimizer, so that Lightning, the schedule, clipping and
    checkpoints see one: its parameter groups are theirs (the same dicts: a schedule that sets
    a group's lr sets it for the optimizer that owns the group) and its state is the one both
    write into. Saved and loaded in PyTorch's own format, parameters numbered across both.

    Hand-written because neither PyTorch nor Lightning combines two optimizers into one:
    Lightning's automatic optimisation takes one optimizer per step and schedule.
    """

    def __init__(self, muon: torch.optim.Muon, adamw: torch.optim.AdamW) -> None:
        self.parts = (muon, adamw)
        super().__init__([group for part in self.parts for group in part.param_groups], {})
        self._share_groups_and_state()

    def _share_groups_and_state(self) -> None:
        start = 0
        for part in self.parts:
            count = len(part.param_groups)
            part.param_groups = self.param_groups[start : start + count]
            part.state = self.state  # each writes only its own parameters' entries
            start += count

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for part in self.parts:
            part.step()
        return loss

    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict(state_dict)  # replaces the group dicts and the state
        self._share_groups_and_state()
        # A group saved by an older PyTorch may lack a setting a newer one added; AdamW's own
        # __setstate__ fills such gaps, the base Optimizer's does not.
        for part in self.parts:
            for group in part.param_groups:
                for key, value in part.defaults.items():
                    group.setdefault(key, value)


def build_optimizer(model: nn.Module, config: OptimizerConfig) -> torch.optim.Optimizer:
    """AdamW, or Muon with AdamW, as `config.algorithm` says."""
    return OPTIMIZERS[config.algorithm](model, config)


def build_adamw(
    model: nn.Module, config: OptimizerConfig, exclude: frozenset[int] = frozenset()
) -> torch.optim.AdamW:
    device_type = next(model.parameters()).device.type
    implementation = resolve_implementation(config.implementation, device_type)
    return torch.optim.AdamW(
        parameter_groups(model, config.weight_decay, exclude),
        lr=config.lr,
        betas=config.betas,
        eps=config.eps,
        **IMPLEMENTATIONS[implementation],
    )


def build_muon(model: nn.Module, config: OptimizerConfig) -> MuonWithAdamW:
    matrices = hidden_matrices(model)
    muon = torch.optim.Muon(
        [{"params": matrices, "name": MUON_GROUP}],
        lr=config.muon_lr,
        weight_decay=config.weight_decay,
        momentum=config.muon_momentum,
        adjust_lr_fn=config.muon_adjust_lr,
    )
    adamw = build_adamw(model, config, exclude=frozenset(id(p) for p in matrices))
    return MuonWithAdamW(muon, adamw)


OPTIMIZERS = {"adamw": build_adamw, "muon": build_muon}
