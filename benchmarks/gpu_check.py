"""Run every GPU path once and print what each did: `make gpu-check` on a machine with a GPU.

    python benchmarks/gpu_check.py [--out DIR] [--data-dir DIR] [--only NAME ...] [--dry-run]

The paths CI cannot run, in under 8 minutes on one GPU:
- `trainer=gpu` (bf16-mixed, fused AdamW, clipping) for 200 steps of the small preset, eager and
  compiled;
- sampling from that checkpoint on the GPU in bf16;
- `trainer=ddp trainer.devices=1` (NCCL, one process);
- the first 300 steps of `experiment=baby_gpt` (its own 5,000-step schedule);
- `python -m chargpt.bench trainer=gpu model/size=medium`.

Each command's output goes to DIR/NAME.log; the summary (status, wall time, steps, val loss,
tokens/s) is printed as a markdown table and written to DIR/gpu_check.md. Exit status 1 if any
command failed. `--rehearse-on-cpu` runs the same commands on the CPU with tiny sizes (the
test suite does, so the check cannot rot while no GPU is at hand).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 300  # one command; the whole check is planned for under 8 minutes


@dataclass
class Check:
    name: str
    args: list[str]  # after `python`
    run_dir: Path | None = None  # a training run: its run.json is read for the summary
    outcome: dict = field(default_factory=dict)


def checks(out: Path, data_dir: str | None, rehearse: bool) -> list[Check]:
    """The commands, in order (sampling reads the first run's checkpoint)."""
    data = [f"paths.data_dir={data_dir}"] if data_dir else []
    quiet = ["logger=csv", *data]
    # On the CPU: the same configs, shrunk; the GPU-only switches turned to their CPU forms.
    cpu = ["trainer.accelerator=cpu", "model/size=tiny", "trainer.limit_val_batches=2"]
    shrink = [*cpu, "trainer.val_every_n_steps=2"] if rehearse else []

    def steps(n: int) -> list[str]:
        return [f"trainer.max_steps={3 if rehearse else n}"]

    small, compiled = out / "small", out / "small-compiled"
    rope, alibi = out / "variants-rope-muon", out / "variants-alibi"
    ddp, baby = out / "ddp-1", out / "baby_gpt-300"
    device = "cpu" if rehearse else "cuda"
    baby_rehearsal = [*cpu, "compile=false", "model.block_size=32", "data.batch_size=4"]
    return [
        Check(
            "trainer=gpu",
            ["run.py", "trainer=gpu", *steps(200), *quiet, *shrink, f"hydra.run.dir={small}"],
            small,
        ),
        Check(
            "trainer=gpu compiled",
            [
                "run.py",
                "trainer=gpu",
                "compile=true",
                *steps(200),
                *quiet,
                *shrink,
                f"hydra.run.dir={compiled}",
            ],
            compiled,
        ),
        Check(
            "sample bf16",
            [
                "-m",
                "chargpt.sample",
                f"ckpt={small / 'checkpoints' / 'best.ckpt'}",
                f"device={device}",
                "dtype=bfloat16",
                "num_samples=4",
                f"max_new_tokens={20 if rehearse else 300}",
            ],
        ),
        Check(
            "variants: rope, qk_norm, gqa, peri, relu2, muon",
            [
                "run.py",
                "trainer=gpu",
                "model.pos_encoding=rope",
                "model.qk_norm=true",
                "model.n_kv_head=2",
                "model.norm_position=peri",
                "model.mlp=relu2",
                "optimizer=muon",
                *steps(100),
                *quiet,
                *shrink,
                f"hydra.run.dir={rope}",
            ],
            rope,
        ),
        Check(
            "variants: alibi, gqa, deepnorm",
            [
                "run.py",
                "trainer=gpu",
                "model.pos_encoding=alibi",
                "model.n_kv_head=2",
                "model.norm_position=deepnorm",
                *steps(100),
                *quiet,
                *shrink,
                f"hydra.run.dir={alibi}",
            ],
            alibi,
        ),
        Check(
            "trainer=ddp devices=1",
            [
                "run.py",
                "trainer=ddp",
                "trainer.devices=1",
                *steps(100),
                *quiet,
                *shrink,
                f"hydra.run.dir={ddp}",
            ],
            ddp,
        ),
        Check(
            "experiment=baby_gpt, 300 steps",
            [
                "run.py",
                "experiment=baby_gpt",
                *steps(300),
                "scheduler.decay_steps=5000",  # the first 300 steps of the full run
                "test_after_training=false",
                *quiet,
                *([*baby_rehearsal, "trainer.val_every_n_steps=2"] if rehearse else []),
                f"hydra.run.dir={baby}",
            ],
            baby,
        ),
        Check(
            "bench trainer=gpu medium",
            [
                "-m",
                "chargpt.bench",
                "trainer=gpu",
                "model/size=tiny" if rehearse else "model/size=medium",
                *data,
                *(cpu[:1] if rehearse else []),
                *(["--steps", "2", "--warmup", "1", "--rounds", "1"] if rehearse else []),
                "--out",
                str(out / "bench"),
            ],
        ),
    ]


def run_check(check: Check, out: Path) -> None:
    log = out / f"{re.sub(r'[^A-Za-z0-9_]+', '-', check.name).strip('-')}.log"
    command = [sys.executable, *check.args]
    print(f"\n$ python {' '.join(check.args)}", flush=True)
    started = time.perf_counter()
    env = dict(os.environ, HYDRA_FULL_ERROR="1")
    try:
        with open(log, "w") as output:
            status = subprocess.run(
                command,
                cwd=PROJECT_ROOT,
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
                timeout=TIMEOUT_S,
            ).returncode
    except subprocess.TimeoutExpired:
        status = f"timed out after {TIMEOUT_S} s"
    check.outcome = {"status": status, "wall_s": time.perf_counter() - started, "log": log}
    if check.run_dir is not None and (check.run_dir / "run.json").is_file():
        record = json.loads((check.run_dir / "run.json").read_text())
        check.outcome |= {
            key: record.get(key) for key in ("global_step", "best_val_loss", "tokens_per_s")
        }
    tail = log.read_text(errors="replace").strip().splitlines()[-12:]
    print("\n".join(f"  {line}" for line in tail))


def summary(done: list[Check]) -> str:
    rows = [
        "| check | status | wall s | steps | best val loss | tokens/s |",
        "|---|---|---|---|---|---|",
    ]
    for check in done:
        o = check.outcome
        status = "ok" if o["status"] == 0 else f"FAILED ({o['status']})"
        loss = "" if o.get("best_val_loss") is None else f"{o['best_val_loss']:.4f}"
        rate = "" if o.get("tokens_per_s") is None else f"{o['tokens_per_s']:,.0f}"
        rows.append(
            f"| {check.name} | {status} | {o['wall_s']:.1f} | {o.get('global_step') or ''} | "
            f"{loss} | {rate} |"
        )
    return "\n".join(rows)


def machine() -> str:
    import torch

    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    return f"{gpu}; torch {torch.__version__}; CUDA {torch.version.cuda}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    stamp = datetime.now().strftime("%Y-%m-%d/%H-%M-%S")
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "outputs" / "gpu-check" / stamp)
    parser.add_argument("--data-dir", help="paths.data_dir for the runs (default: the project's)")
    parser.add_argument("--only", nargs="*", help="run only the checks whose names start so")
    parser.add_argument("--dry-run", action="store_true", help="print the commands only")
    parser.add_argument("--rehearse-on-cpu", action="store_true", help="tiny, on the CPU")
    args = parser.parse_args(argv)
    todo = checks(args.out, args.data_dir, args.rehearse_on_cpu)
    if args.only:
        todo = [c for c in todo if any(c.name.startswith(name) for name in args.only)]
    if args.dry_run:
        print("\n".join(f"python {' '.join(c.args)}" for c in todo))
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"gpu check: {machine()}; outputs in {args.out}")
    for check in todo:
        run_check(check, args.out)
    table = summary(todo)
    (args.out / "gpu_check.md").write_text(f"{machine()}\n\n{table}\n")
    print(f"\n{table}")
    return 0 if all(c.outcome["status"] == 0 for c in todo) else 1


if __name__ == "__main__":
    sys.exit(main())
