"""Training speed of one or more configs: ms/step, tokens/s, memory, FLOPs per token and MFU.

    python -m chargpt.bench [train] [OVERRIDES] [--loop lightning] [--steps 30 --warmup 5]

OVERRIDES are `run.py`'s (`model/size=medium data.batch_size=64 trainer.precision=bf16-mixed
compile=true`); a comma list (`compile=false,true`) benchmarks each value, and the
configs take turns block by block (`--rounds`), so load from other processes slows all alike.
Every block fits `warmup` untimed steps, then `steps` timed ones; the median step time of all
rounds is reported. Writes `train.json` and `train.md` to `--out` (default
outputs/bench/DATE/TIME).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import torch

from chargpt.bench.flops import mfu
from chargpt.bench.hardware import Peak, describe_machine, peak_flops
from chargpt.bench.loops import LOOP_DESCRIPTIONS, LOOPS, Block, make_runner
from chargpt.bench.workload import Workload
from chargpt.cli import Table, to_markdown
from chargpt.model.parameters import matmul_parameters, num_parameters, training_flops_per_token
from chargpt.runs.sweep import expand_sweep

MIB = 2**20


@dataclass
class Result:
    """The figures of one config stepped by one loop."""

    label: str
    loop: str
    device: str
    preset: str  # n_layer/n_head/d_model
    batch_size: int
    context: int
    precision: str
    compile: bool
    params: int
    matmul_params: int
    tokens_per_step: int
    median_ms: float
    median_cpu_ms: float  # process CPU time per step (threads summed); robust to other load
    p25_ms: float
    p75_ms: float
    round_medians_ms: list[float]
    tokens_per_s: float
    first_step_s: float  # the first block's first step: compilation and allocation
    peak_memory_mib: float | None
    flops_per_token: int
    achieved_tflops: float
    mfu: float
    batch_draw_ms: float
    batch_draw_share: float  # of the median step time

    @property
    def row(self) -> list[str]:
        memory = "—" if self.peak_memory_mib is None else f"{self.peak_memory_mib:,.0f} MiB"
        return [
            self.label,
            self.loop,
            f"{self.median_ms:.1f}",
            f"{self.median_cpu_ms:.1f}",
            f"{self.tokens_per_s:,.0f}",
            f"{self.first_step_s:.2f}",
            memory,
            f"{self.flops_per_token / 1e6:.2f}M",
            f"{100 * self.mfu:.1f}%",
            f"{self.batch_draw_ms:.3f} ({100 * self.batch_draw_share:.1f}%)",
        ]


COLUMNS = [
    "config",
    "loop",
    "ms/step (median)",
    "CPU ms/step",
    "tokens/s",
    "first step s",
    "peak memory",
    "FLOPs/token",
    "MFU",
    "batch draw ms (share)",
]


def batch_draw_seconds(workload: Workload, draws: int = 200) -> float:
    """Median time to take one batch from the training loader (RandomWindows + DataLoader)."""
    batches = iter(workload.datamodule.train_dataloader())
    next(batches)
    times = []
    for _ in range(draws):
        start = time.perf_counter()
        next(batches)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


@dataclass
class Measurements:
    blocks: dict[tuple[int, str], list[Block]]  # by (workload index, loop)
    peak: Peak  # the best of the peaks measured before, between and after the rounds


def run_interleaved(
    workloads: list[Workload], loops: list[str], steps: int, warmup: int, rounds: int
) -> Measurements:
    """Every (workload, loop) pair runs one block per round, in turn.

    The machine's peak is measured around every round and the best kept: on a shared machine a
    single measurement may catch a busy moment (and MFU would then exceed 100%).
    """
    device = workloads[0].device
    peaks = [peak_flops(device)]
    runners = {
        (index, loop): make_runner(loop, workload)
        for index, workload in enumerate(workloads)
        for loop in loops
    }
    blocks: dict[tuple[int, str], list[Block]] = {key: [] for key in runners}
    try:
        for round_index in range(rounds):
            for key, runner in runners.items():
                blocks[key].append(runner.run_block(steps, warmup))
                median = 1000 * statistics.median(blocks[key][-1].step_times)
                label = workloads[key[0]].label
                progress = f"round {round_index + 1}/{rounds}  {key[1]:<20} {label}"
                print(f"  {progress}: {median:.1f} ms/step", file=sys.stderr)
            peaks.append(peak_flops(device))
    finally:
        for runner in runners.values():
            runner.close()
    return Measurements(blocks, max(peaks, key=lambda peak: peak.flops_per_s))


def summarize(workload: Workload, loop: str, blocks: list[Block], peak: Peak) -> Result:
    model_cfg = workload.cfg.model
    times = [t for block in blocks for t in block.step_times]
    median = statistics.median(times)
    quartiles = statistics.quantiles(times, n=4) if len(times) > 1 else [median, median, median]
    tokens_per_s = workload.tokens_per_step / median
    module = workload.build_module()  # for counting only
    flops = training_flops_per_token(module.model)
    draw = batch_draw_seconds(workload)
    memories = [b.peak_memory_bytes for b in blocks if b.peak_memory_bytes is not None]
    return Result(
        label=workload.label,
        loop=loop,
        device=str(workload.device),
        preset=f"{model_cfg.n_layer}/{model_cfg.n_head}/{model_cfg.d_model}",
        batch_size=workload.datamodule.batch_size,
        context=workload.datamodule.block_size,
        precision=str(workload.cfg.trainer.precision),
        compile=bool(workload.cfg.compile),
        params=num_parameters(module.model),
        matmul_params=matmul_parameters(module.model),
        tokens_per_step=workload.tokens_per_step,
        median_ms=1000 * median,
        median_cpu_ms=1000 * statistics.median(t for b in blocks for t in b.cpu_times),
        p25_ms=1000 * quartiles[0],
        p75_ms=1000 * quartiles[2],
        round_medians_ms=[1000 * statistics.median(b.step_times) for b in blocks],
        tokens_per_s=tokens_per_s,
        first_step_s=blocks[0].first_step_s,
        peak_memory_mib=max(memories) / MIB if memories else None,
        flops_per_token=flops,
        achieved_tflops=flops * tokens_per_s / 1e12,
        mfu=mfu(flops, tokens_per_s, peak.flops_per_s),
        batch_draw_ms=1000 * draw,
        batch_draw_share=draw / median,
    )


def report_header(machine: dict, peak: Peak, args: argparse.Namespace, command: str) -> str:
    facts = ", ".join(f"{key} {value}" for key, value in machine.items() if key != "date")
    return "\n".join(
        [
            f"{machine['date']} · `{command}`",
            "",
            f"Machine: {facts}.",
            f"Peak: {peak.flops_per_s / 1e12:.3f} TFLOP/s ({peak.source}). "
            f"{args.rounds} rounds × ({args.warmup} warm-up + {args.steps} timed steps) per row. "
            f"Process peak RSS {peak_rss_mib():,.0f} MiB.",
        ]
    )


def report_facts(
    command: str, machine: dict, peak: Peak, args: argparse.Namespace
) -> dict[str, object]:
    """What every benchmark's JSON starts with: how it was run, where, and against what peak."""
    return {
        "command": command,
        "machine": machine,
        "peak_flops_per_s": peak.flops_per_s,
        "peak_source": peak.source,
        "settings": {"steps": args.steps, "warmup": args.warmup, "rounds": args.rounds},
    }


def peak_rss_mib() -> float:
    """The process's peak resident memory (on CPU the only memory figure: all configs together)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def write_outputs(out_dir: Path, stem: str, payload: dict, markdown: str) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{stem}.json").write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    (out_dir / f"{stem}.md").write_text(markdown + "\n", encoding="utf-8")
    print(f"\nwrote {out_dir / stem}.json and .md", file=sys.stderr)


def default_out_dir() -> Path:
    return Path("outputs") / "bench" / datetime.now().strftime("%Y-%m-%d/%H-%M-%S")


def timing_parser(subcommand: str, description: str) -> argparse.ArgumentParser:
    """The arguments the training and overhead benchmarks share."""
    parser = argparse.ArgumentParser(
        prog=f"python -m chargpt.bench {subcommand}",
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("overrides", nargs="*", help="run.py overrides; a,b lists compare values")
    parser.add_argument("--steps", type=int, default=30, help="timed steps per block")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps before each block")
    parser.add_argument("--rounds", type=int, default=3, help="blocks per config, interleaved")
    parser.add_argument("--out", type=Path, default=None, help="folder for the JSON and table")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    return parser


def command_line(subcommand: str, argv: list[str] | None) -> str:
    """The command as typed, for the report."""
    arguments = sys.argv[1:] if argv is None else argv
    return " ".join(["python -m chargpt.bench", subcommand, *arguments])


def apply_threads(threads: int | None) -> None:
    if threads is not None:
        torch.set_num_threads(threads)


def main(argv: list[str] | None = None) -> None:
    parser = timing_parser("train", __doc__)
    parser.add_argument("--loop", choices=LOOPS, default="lightning", help="what steps the model")
    args = parser.parse_args(argv)
    apply_threads(args.threads)
    command = command_line("train", argv)
    with tempfile.TemporaryDirectory(prefix="chargpt-bench-") as scratch:
        workloads = [Workload.from_overrides(o, scratch) for o in expand_sweep(args.overrides)]
        device = workloads[0].device
        measured = run_interleaved(workloads, [args.loop], args.steps, args.warmup, args.rounds)
        blocks, peak = measured.blocks, measured.peak
        results = [
            summarize(w, args.loop, blocks[(i, args.loop)], peak) for i, w in enumerate(workloads)
        ]
    machine = describe_machine(device)
    markdown = "\n\n".join(
        [
            report_header(machine, peak, args, command),
            f"Loop: {LOOP_DESCRIPTIONS[args.loop]}.",
            to_markdown(Table(COLUMNS, [r.row for r in results], right=COLUMNS[2:])),
        ]
    )
    print(markdown)
    payload = report_facts(command, machine, peak, args) | {
        "results": [
            result.__dict__ | {"step_times_s": [b.step_times for b in blocks[(index, args.loop)]]}
            for index, result in enumerate(results)
        ],
    }
    write_outputs(args.out or default_out_dir(), "train", payload, markdown)
