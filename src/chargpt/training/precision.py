"""`trainer.precision`: Lightning's values checked, and `auto` resolved for this machine.

torch and OmegaConf only (no Lightning), so analyze resolves `auto` as a run would.
"""

from __future__ import annotations

import torch
from omegaconf import DictConfig

from chargpt.errors import SettingError

# Lightning 2's `Trainer(precision=...)` values (its own list is private). A typo would otherwise
# surface as Hydra's multi-line instantiation error.
PRECISIONS = (
    "32-true", "16-mixed", "bf16-mixed", "16-true", "bf16-true", "64-true",
    "transformer-engine", "transformer-engine-float16", "64", "32", "16", "bf16", 64, 32, 16,
    None,  # Lightning's default: 32-true
)  # fmt: skip


AUTO_PRECISION = "auto"


def check_precision(precision: object) -> None:
    if precision == AUTO_PRECISION:
        return
    if precision not in PRECISIONS or isinstance(precision, bool):
        shown = ", ".join(str(p) for p in PRECISIONS[:6])
        raise SettingError(
            f"trainer.precision={precision!r}: must be auto or one of {shown} (or Lightning's "
            "aliases)"
        )


def resolve_precision(trainer_cfg: DictConfig) -> None:
    """`trainer.precision=auto` becomes what the device runs fastest with fp32 weights kept:
    bf16-mixed where its matmuls run bf16 natively, else 32-true (see `native_bf16`)."""
    trainer_cfg.precision = precision_for(
        trainer_cfg.get("precision"), trainer_cfg.get("accelerator", "auto")
    )


def precision_for(precision: object, accelerator: str = "auto") -> object:
    if precision != AUTO_PRECISION:
        return precision
    return "bf16-mixed" if native_bf16(accelerator) else "32-true"


def native_bf16(accelerator: str) -> bool:
    """Whether the device the accelerator setting picks multiplies bf16 natively: a CPU with
    AVX512-BF16 or AMX (oneDNN's check), an NVIDIA GPU from Ampere on. On a 2-core AVX512-BF16
    CPU bf16 autocast made training steps 2.0-2.3x faster (benchmarks/README.md, "bf16 on CPU")."""
    if trains_on_cpu(accelerator):
        return bool(torch.backends.mkldnn.is_available() and _mkldnn_bf16())
    if accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    return False


def _mkldnn_bf16() -> bool:
    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    return bool(check is not None and check())


def trains_on_cpu(accelerator: str) -> bool:
    """Whether `trainer.accelerator` puts training on the CPU here (auto: when no CUDA GPU)."""
    return accelerator == "cpu" or (accelerator == "auto" and not torch.cuda.is_available())
