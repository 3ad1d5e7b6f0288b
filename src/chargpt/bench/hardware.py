"""The machine a benchmark ran on, and its peak matmul rate (the denominator of MFU).

On CPU the peak is measured in the same run (the best of several large fp32 matmuls), because
no datasheet knows how many cores a container really gets. On a GPU it is the datasheet's dense
bf16 tensor-core rate, looked up by device name.
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass
from datetime import datetime

import torch

# Dense (no sparsity) bf16 peaks in FLOP/s, from the vendors' datasheets; longest name first wins.
GPU_BF16_PEAK_FLOPS: dict[str, float] = {
    "H100 SXM": 989e12,
    "H100 NVL": 835e12,
    "H100 PCIe": 756e12,
    "H100": 989e12,
    "H200": 989e12,
    "GH200": 989e12,
    "B200": 2250e12,
    "A100": 312e12,
    "A10G": 70e12,
    "A10": 125e12,
    "L40S": 362e12,
    "L4": 121e12,
    "RTX 4090": 165e12,
    "RTX 3090": 71e12,
}


@dataclass(frozen=True)
class Peak:
    flops_per_s: float
    source: str  # how the figure was obtained, for the report


def describe_machine(device: torch.device) -> dict[str, str | int]:
    """Plain facts for the results page: processor, accelerator, threads, versions, date."""
    facts: dict[str, str | int] = {
        "date": datetime.now().isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "cpu": _cpu_name(),
        "cpu_cores_visible": len(os.sched_getaffinity(0)),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
    }
    if device.type == "cuda":
        facts["gpu"] = torch.cuda.get_device_name(device)
    return facts


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def peak_flops(device: torch.device) -> Peak:
    """The datasheet bf16 peak of a known GPU; otherwise the measured matmul peak."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for key in sorted(GPU_BF16_PEAK_FLOPS, key=len, reverse=True):
            if key in name:
                return Peak(GPU_BF16_PEAK_FLOPS[key], f"datasheet bf16 dense, {key}")
        return Peak(measure_matmul_peak(device, torch.bfloat16), f"measured bf16 matmul ({name})")
    return Peak(measure_matmul_peak(device, torch.float32), "measured fp32 matmul")


def measure_matmul_peak(
    device: torch.device, dtype: torch.dtype = torch.float32, size: int = 2048, repeats: int = 5
) -> float:
    """FLOP/s of the fastest of `repeats` (size × size) @ (size × size) products: 2·size³ each.

    The best run, not the median: the peak is what the hardware can do when nothing interferes.
    """
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    torch.mm(a, b)  # first call: allocation and kernel selection
    best = float("inf")
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        torch.mm(a, b)
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def synchronize(device: torch.device) -> None:
    """Wait for the accelerator's queued work (kernels run asynchronously); no-op on CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
