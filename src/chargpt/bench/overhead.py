"""What the Lightning Trainer costs per step, against a plain PyTorch loop, in one process.

    python -m chargpt.bench overhead [OVERRIDES] [--rounds 4 --steps 30 --warmup 5]

The same config (model, data, optimizer, schedule, clipping, precision, compile) is stepped by

- `plain`: a hand-written loop (fetch, forward, backward, clip, AdamW, schedule);
- `lightning`: the bare Trainer (no logger, progress bar, model summary or checkpointing);
- `lightning-configured`: the Trainer as `run.py` builds it, callbacks, loggers and progress
  bar included, minus checkpoint I/O and validation (those run between steps, not in them).

The loops take turns block by block, so load from other processes slows all of them alike; the
ratio is of median step times (tokens/s), with the spread of the per-round ratios beside it.
`--profile` then fits one more block of each Lightning loop with Lightning's SimpleProfiler and
prints where its time per hook went.
"""

from __future__ import annotations

import tempfile

from lightning.pytorch.profilers import SimpleProfiler

from chargpt.bench.hardware import describe_machine
from chargpt.bench.loops import LOOP_DESCRIPTIONS, LOOPS, LightningRunner
from chargpt.bench.training import (
    Result,
    apply_threads,
    command_line,
    default_out_dir,
    report_facts,
    report_header,
    run_interleaved,
    summarize,
    timing_parser,
    write_outputs,
)
from chargpt.bench.workload import Workload
from chargpt.cli import Table, to_markdown

COLUMNS = [
    "loop",
    "ms/step (median)",
    "tokens/s",
    "× plain (tokens/s)",
    "per-round × plain",
    "CPU ms/step",
    "× plain (CPU time)",
]


def ratio_rows(results: dict[str, Result]) -> tuple[list[list[str]], dict[str, float]]:
    """Table rows, and each loop's tokens/s as a multiple of the plain loop's."""
    plain = results["plain"]
    ratios, rows = {}, []
    for loop, result in results.items():
        ratios[loop] = result.tokens_per_s / plain.tokens_per_s
        per_round = [
            p / r for p, r in zip(plain.round_medians_ms, result.round_medians_ms, strict=True)
        ]
        rows.append(
            [
                loop,
                f"{result.median_ms:.1f}",
                f"{result.tokens_per_s:,.0f}",
                f"{ratios[loop]:.3f}",
                f"{min(per_round):.3f}–{max(per_round):.3f}",
                f"{result.median_cpu_ms:.1f}",
                f"{plain.median_cpu_ms / result.median_cpu_ms:.3f}",
            ]
        )
    return rows, ratios


def profile_lightning(workload: Workload, loop: str, steps: int, top: int = 15) -> str:
    """One block of a Lightning loop under SimpleProfiler: the hooks that took longest, per step."""
    profiler = SimpleProfiler()
    configured = loop != "lightning"
    runner = LightningRunner(workload, workload.build_module(), configured, profiler)
    try:
        runner.run_block(steps, warmup=0)
    finally:
        runner.close()
    totals = {action: sum(times) for action, times in profiler.recorded_durations.items()}
    rows = [
        [
            f"`{action}`",
            str(len(profiler.recorded_durations[action])),
            f"{1000 * total / (steps + 1):.3f}",
        ]
        for action, total in sorted(totals.items(), key=lambda item: -item[1])[:top]
    ]
    return to_markdown(
        Table(["action", "calls", "ms per step"], rows, right=["calls", "ms per step"])
    )


def main(argv: list[str] | None = None) -> None:
    parser = timing_parser("overhead", __doc__)
    parser.add_argument(
        "--loops", default=",".join(LOOPS), help=f"comma list from {', '.join(LOOPS)}"
    )
    parser.add_argument("--profile", action="store_true", help="then profile the Lightning loops")
    args = parser.parse_args(argv)
    apply_threads(args.threads)
    loops = args.loops.split(",")
    if loops[0] != "plain" or any(loop not in LOOPS for loop in loops):
        parser.error(f"--loops must start with plain and name loops from {', '.join(LOOPS)}")
    command = command_line("overhead", argv)
    with tempfile.TemporaryDirectory(prefix="chargpt-bench-") as scratch:
        workload = Workload.from_overrides(args.overrides, scratch)
        measured = run_interleaved([workload], loops, args.steps, args.warmup, args.rounds)
        blocks = {loop: measured.blocks[(0, loop)] for loop in loops}
        peak = measured.peak
        results = {loop: summarize(workload, loop, blocks[loop], peak) for loop in loops}
        profiles = {}
        if args.profile:
            for loop in loops[1:]:
                profiles[loop] = profile_lightning(workload, loop, args.steps)
    rows, ratios = ratio_rows(results)
    machine = describe_machine(workload.device)
    loops_text = "\n".join(f"- `{loop}`: {LOOP_DESCRIPTIONS[loop]}" for loop in loops)
    closing = "; ".join(f"{loop} {ratios[loop]:.3f}× plain" for loop in loops[1:])
    markdown = "\n\n".join(
        [
            report_header(machine, peak, args, command),
            f"Config: {workload.label}.\n\n{loops_text}",
            to_markdown(Table(COLUMNS, rows, right=COLUMNS[1:])),
            f"Tokens/s relative to the plain loop: {closing}.",
        ]
    )
    print(markdown)
    for loop, summary in profiles.items():
        print(f"\nSimpleProfiler, {loop}, {args.steps + 1} steps:\n\n{summary}")
    payload = report_facts(command, machine, peak, args) | {
        "config": workload.label,
        "ratios_vs_plain": ratios,
        "results": [r.__dict__ for r in results.values()],
        "step_times_s": {loop: [b.step_times for b in blocks[loop]] for loop in loops},
        "profiles": profiles,
    }
    write_outputs(args.out or default_out_dir(), "overhead", payload, markdown)
