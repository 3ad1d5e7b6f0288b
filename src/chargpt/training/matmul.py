"""`float32_matmul_precision`: how float32 matrix products may be computed (TF32 on GPUs)."""

from __future__ import annotations

import torch

from chargpt.errors import SettingError

# highest: true fp32; high: TF32 on NVIDIA GPUs (Ampere or newer), fp32 elsewhere; medium: bf16.
MATMUL_PRECISIONS = ("highest", "high", "medium")


def set_matmul_precision(precision: str) -> None:
    """Apply the setting process-wide; an unknown value fails (PyTorch would only warn)."""
    if precision not in MATMUL_PRECISIONS:
        raise SettingError(
            f"float32_matmul_precision={precision!r}: must be one of {', '.join(MATMUL_PRECISIONS)}"
        )
    torch.set_float32_matmul_precision(precision)
