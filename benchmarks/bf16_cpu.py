"""Why bf16 autocast was slower than fp32 on a CPU, and what it gains once attention runs in fp32.

    python benchmarks/bf16_cpu.py [--n-head 8 4] [--batch 32] [--steps 10] [--rounds 3]

One training step (forward, backward, fused AdamW) of the small preset (d_model 128, 4 layers,
context 64) at each head count, in three arms that take turns round by round:

- fp32: no autocast;
- bf16, bf16 attention: autocast, and PyTorch's CPU flash attention fed bf16 (chargpt before
  `model.gpt.attend` cast it to fp32);
- bf16 (chargpt): autocast, attention in fp32, as `attend` now does.

It prints the median ms/step of each arm and, from torch.profiler, the share of the step the
attention backward kernel takes. Figures: benchmarks/README.md, "bf16 on CPU".
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import statistics
import time
from collections.abc import Callable

import torch
from torch.profiler import ProfilerActivity, profile

from chargpt.model import GPT, GPTConfig
from chargpt.model import gpt as gpt_module

ARMS = ("fp32", "bf16, bf16 attention", "bf16 (chargpt)")


@contextlib.contextmanager
def arm(name: str):
    """The autocast and attention of one arm."""
    original = gpt_module.attend
    if name == "bf16, bf16 attention":
        gpt_module.attend = gpt_module._causal_attention
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=name != "fp32"):
            yield
    finally:
        gpt_module.attend = original


def training_step(model: GPT, optimizer: torch.optim.Optimizer, batch, name: str) -> None:
    x, y = batch
    with arm(name):
        _, loss = model(x, y)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def timed(step: Callable[[], None], steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps * 1e3


def attention_backward_share(step: Callable[[], None]) -> float:
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(3):
            step()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    backward = sum(
        e.self_cpu_time_total
        for e in events
        if "scaled_dot_product" in e.key and "backward" in e.key
    )
    return backward / total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-head", type=int, nargs="+", default=[8, 4])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}")
    print("| heads | arm | ms/step (median) | speed-up over fp32 | attention backward share |")
    print("|---|---|---:|---:|---:|")
    for n_head in args.n_head:
        torch.manual_seed(0)
        config = GPTConfig(vocab_size=65, block_size=64, d_model=128, n_layer=4, n_head=n_head)
        batch = tuple(torch.randint(0, 65, (args.batch, 64)) for _ in range(2))
        models = {name: GPT(config) for name in ARMS}
        optimizers = {
            name: torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True)
            for name, model in models.items()
        }

        def step(name: str, models=models, optimizers=optimizers, batch=batch) -> Callable:
            return functools.partial(training_step, models[name], optimizers[name], batch, name)

        times: dict[str, list[float]] = {name: [] for name in ARMS}
        for name in ARMS:
            timed(step(name), 3)  # warm-up
        for _ in range(args.rounds):
            for name in ARMS:
                times[name].append(timed(step(name), args.steps))
        fp32 = statistics.median(times["fp32"])
        for name in ARMS:
            ms = statistics.median(times[name])
            share = attention_backward_share(step(name))
            print(f"| {n_head} | {name} | {ms:.1f} | {fp32 / ms:.2f} | {share:.0%} |")


if __name__ == "__main__":
    main()
