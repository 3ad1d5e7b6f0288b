"""Helpers for the end-to-end tests: run `run.py` as a user does, read what a run wrote.

`pyproject.toml` puts tests/ on the path (`pythonpath`), so test files `from helpers import ...`.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import lightning as L

from chargpt.data.datamodule import CharDataModule
from chargpt.training.module import GPTLightningModule

PROJECT_ROOT = Path(__file__).resolve().parents[1]

TINY = [
    "model/size=tiny",
    "model.block_size=16",
    "data.batch_size=8",
    "trainer.max_steps=15",
    "trainer.val_every_n_steps=10",
    "trainer.limit_val_batches=2",
    "callbacks.sample.max_new_tokens=40",
]


# A short run whose halves resume into the unbroken run: one schedule, validation and logs at
# every step that matters, deterministic kernels.
RESUMABLE = [
    "model/size=tiny",
    "model.block_size=16",
    "model.dropout=0.1",  # dropout draws random numbers: their state must be restored too
    "data.batch_size=8",
    "scheduler.decay_steps=12",  # one schedule for both halves and the unbroken run
    "trainer.val_every_n_steps=6",
    "trainer.limit_val_batches=2",
    "trainer.log_every_n_steps=1",
    "trainer.deterministic=true",
    "callbacks.sample.max_new_tokens=10",
    "test_after_training=false",
]
# The newer model variants (issue 14), each alone, then together: GPTConfig keyword arguments.
NEWER_VARIANTS = [
    dict(pos_encoding="rope"),
    dict(pos_encoding="alibi"),
    dict(pos_encoding="none"),
    dict(qk_norm=True),
    dict(n_kv_head=1),
    dict(norm_position="peri"),
    dict(norm_position="deepnorm"),
    dict(mlp="relu2"),
    dict(pos_encoding="rope", qk_norm=True, n_kv_head=1, norm_position="peri", mlp="relu2"),
    dict(pos_encoding="alibi", qk_norm=True, norm_position="deepnorm", norm="rmsnorm"),
]


def variant_id(variant: dict) -> str:
    return "-".join(f"{key}={value}" for key, value in variant.items())


def run_env(full_error: bool) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("HYDRA_FULL_ERROR", None)
    if full_error:
        env["HYDRA_FULL_ERROR"] = "1"
    return env


def run(
    args: list[str],
    cwd: Path = PROJECT_ROOT,
    timeout: int = 300,
    check: bool = True,
    full_error: bool = True,
) -> subprocess.CompletedProcess:
    """run.py with these overrides; `check` asserts that it succeeded.

    `full_error` sets HYDRA_FULL_ERROR=1 (tracebacks, for debugging failures); without it the
    user sees one-line errors.
    """
    result = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "run.py"), *args],
        cwd=cwd,
        env=run_env(full_error),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check:
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def start(args: list[str], cwd: Path = PROJECT_ROOT) -> subprocess.Popen:
    """run.py in the background, as a user's terminal would run it (no HYDRA_FULL_ERROR)."""
    return subprocess.Popen(
        [sys.executable, str(PROJECT_ROOT / "run.py"), *args],
        cwd=cwd,
        env=run_env(full_error=False),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(path: Path, process: subprocess.Popen, timeout: float = 240) -> None:
    """Wait until `path` exists (failing early if the process ends first)."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process.poll() is not None:
            raise AssertionError(f"run.py ended before {path} appeared:\n{process.stderr.read()}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"{path} did not appear within {timeout} s")
        time.sleep(0.2)


def wandb_summary(run_dir: Path, offline_run: str | None = None) -> dict:
    """What `wandb leet` shows for the run's (only, or named) offline wandb run."""
    if offline_run is None:
        (path,) = (run_dir / "wandb").glob("offline-run-*")
    else:
        path = run_dir / "wandb" / offline_run
    out = subprocess.run(
        [
            Path(sys.executable).parent / "wandb",
            "leet",
            "inspect",
            "--summary",
            "--json",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return json.loads(out.stdout)


def csv_metric(run_dir: Path, name: str) -> list[float]:
    with open(run_dir / "csv" / "metrics.csv") as f:
        return [float(row[name]) for row in csv.DictReader(f) if row.get(name)]


def tiny_setup(play_file, module_class=GPTLightningModule, **trainer_kwargs):
    """A one-layer module, its data and a quiet Trainer, for callback tests."""
    datamodule = CharDataModule(corpus=None, path=str(play_file), block_size=16, batch_size=4)
    datamodule.setup("fit")
    module = module_class(
        model=dict(
            vocab_size=datamodule.vocab_size, block_size=16, n_layer=1, n_head=2, d_model=16
        ),
        optimizer=dict(lr=1e-3),
        scheduler=dict(warmup_steps=0, decay_steps=10),
        tokenizer=datamodule.tokenizer.to_dict(),
    )
    trainer = L.Trainer(
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=1,
        **trainer_kwargs,
    )
    return trainer, module, datamodule
