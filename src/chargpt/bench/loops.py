"""Two ways to step the same training: a plain PyTorch loop and the Lightning Trainer.

Both time a step the same way: from the start of one step (before its batch is fetched) to the
start of the next, so data loading, the optimizer, the schedule and any per-step hooks count.
Neither waits for the accelerator inside the timed steps (that would hide what a per-step host
synchronisation costs); the clock waits once at the end of a block, so on a GPU the last step
absorbs the queue and single-step times jitter, while their median still tracks the mean.
Beside wall time, the process's CPU time per step is kept: on a machine shared with other work
it counts what this process did (background threads included), not the time it waited.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint, RichProgressBar
from lightning.pytorch.loggers import Logger
from lightning.pytorch.profilers import Profiler
from omegaconf import DictConfig

from chargpt.bench.hardware import synchronize
from chargpt.bench.workload import Workload
from chargpt.errors import SettingError
from chargpt.training.matmul import set_matmul_precision
from chargpt.training.module import GPTLightningModule
from chargpt.training.optim import build_optimizer
from chargpt.training.trainer import lightning_trainer_config

LOOPS = ("plain", "lightning", "lightning-configured")
LOOP_DESCRIPTIONS = {
    "plain": "plain PyTorch loop: fetch, forward, backward, clip, AdamW, schedule",
    "lightning": "bare Trainer: no logger, progress bar, summary or checkpointing",
    "lightning-configured": (
        "Trainer as run.py builds it (callbacks, loggers, progress bar) minus "
        "checkpoint I/O and validation"
    ),
}


@dataclass
class Block:
    """Per-step wall and process CPU times (s) of one timed block, warm-up steps excluded."""

    step_times: list[float]
    cpu_times: list[float]
    first_step_s: float  # the block's first step, compilation and allocation included
    peak_memory_bytes: int | None = None  # accelerator memory; None on CPU


class Stamps:
    """(wall, process CPU) clock readings at step boundaries, turned into per-step times."""

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []

    def stamp(self) -> None:
        self.wall.append(time.perf_counter())
        self.cpu.append(time.process_time())

    def block(self, steps: int, warmup: int, device: torch.device) -> Block:
        """The timed steps: `warmup` untimed ones first; the last interval is dropped too."""
        wall = [b - a for a, b in itertools.pairwise(self.wall)]
        cpu = [b - a for a, b in itertools.pairwise(self.cpu)]
        timed = slice(warmup, warmup + steps)
        return Block(wall[timed], cpu[timed], wall[0], peak_memory(device))


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory(device: torch.device) -> int | None:
    return torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None


def autocast_context(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """Lightning's `precision` setting, for the plain loop (the two it needs no scaler for)."""
    if precision in ("32-true", "32", 32):
        return contextlib.nullcontext()
    if precision == "bf16-mixed":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    raise SettingError(
        f"trainer.precision={precision!r}: the plain loop runs 32-true and bf16-mixed only"
    )


class PlainLoop:
    """The training step without a framework: what Lightning's automatic optimisation does.

    It calls the module's own `training_loss` (compiled when `compile=true`), builds the
    optimizer and schedule with the training code, and clips by norm as `gradient_clip_val` asks.
    """

    def __init__(self, workload: Workload, module: GPTLightningModule) -> None:
        trainer_cfg = workload.cfg.trainer
        self.device = workload.device
        self.module = module.to(self.device).train()
        self.optimizer = build_optimizer(module.model, module.optimizer_config)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, module.schedule.lr_factor
        )
        self.clip = trainer_cfg.gradient_clip_val
        self.accumulate = trainer_cfg.accumulate_grad_batches
        self.autocast = autocast_context(trainer_cfg.precision, self.device)
        self.batches: Iterator = iter(workload.datamodule.train_dataloader())
        self.matmul_precision = workload.cfg.float32_matmul_precision

    def step(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        for _ in range(self.accumulate):
            x, y = (t.to(self.device, non_blocking=True) for t in next(self.batches))
            with self.autocast:
                loss = self.module.training_loss(x, y)
            (loss / self.accumulate).backward()
        if self.clip:
            torch.nn.utils.clip_grad_norm_(self.module.parameters(), self.clip)
        self.optimizer.step()
        self.scheduler.step()

    def run_block(self, steps: int, warmup: int) -> Block:
        set_matmul_precision(self.matmul_precision)  # process-wide: configs may differ
        reset_peak_memory(self.device)
        stamps = Stamps()
        for _ in range(warmup + steps + 1):
            stamps.stamp()
            self.step()
        synchronize(self.device)
        stamps.stamp()
        return stamps.block(steps, warmup, self.device)

    def close(self) -> None:
        """Nothing to release: it holds no loggers (the same interface as LightningRunner)."""


class StepClock(L.Callback):
    """Stamps the start of every training batch, and the end of training."""

    def __init__(self, device: torch.device) -> None:
        super().__init__()
        self.device = device
        self.stamps = Stamps()

    def on_train_batch_start(self, *args: object) -> None:
        self.stamps.stamp()

    def on_train_batch_end(self, trainer: L.Trainer, *args: object) -> None:
        if trainer.global_step >= trainer.max_steps:
            synchronize(self.device)
            self.stamps.stamp()


class LightningRunner:
    """Fits the module for one block of steps at a time, with a fresh Trainer each block.

    `configured=False` is the bare Trainer; `configured=True` adds the callbacks and loggers of
    the config as `run.py` does (without the checkpoint callback: no I/O in the timed steps).
    Validation is off in both. Loggers are built once and reused, as in one long run.
    """

    def __init__(
        self,
        workload: Workload,
        module: GPTLightningModule,
        configured: bool,
        profiler: Profiler | None = None,
    ) -> None:
        self.workload = workload
        self.module = module
        self.configured = configured
        self.profiler = profiler
        self.loggers: list[Logger] = []
        if configured:
            self.loggers = [instantiate(node) for node in workload.cfg.logger.values()]

    def _trainer(self, max_steps: int, clock: StepClock) -> L.Trainer:
        cfg = self.workload.cfg
        settings = dict(
            max_steps=max_steps,
            limit_val_batches=0,
            num_sanity_val_steps=0,
            enable_checkpointing=False,
            default_root_dir=cfg.paths.output_dir,
            profiler=self.profiler,
        )
        if not self.configured:
            return instantiate(
                lightning_trainer_config(cfg.trainer),
                callbacks=[clock],
                logger=False,
                enable_progress_bar=False,
                enable_model_summary=False,
                **settings,
            )
        callbacks = [_callback(node) for node in cfg.callbacks.values()]
        callbacks = [c for c in callbacks if not isinstance(c, ModelCheckpoint)]
        return instantiate(
            lightning_trainer_config(cfg.trainer),
            callbacks=[*callbacks, clock],
            logger=self.loggers or False,
            **settings,
        )

    def run_block(self, steps: int, warmup: int) -> Block:
        device = self.workload.device
        clock = StepClock(device)
        trainer = self._trainer(warmup + steps + 1, clock)
        set_matmul_precision(self.workload.cfg.float32_matmul_precision)
        reset_peak_memory(device)
        trainer.fit(self.module, datamodule=self.workload.datamodule)
        return clock.stamps.block(steps, warmup, device)

    def close(self) -> None:
        for logger in self.loggers:
            logger.finalize("success")
            experiment = getattr(logger, "_experiment", None)
            if hasattr(experiment, "finish"):
                experiment.finish()


def _callback(node: DictConfig) -> L.Callback:
    """The configured callback; a rich progress bar draws as in a terminal, into /dev/null.

    Drawing to a terminal is its real cost; into a pipe it would draw nothing. (Rich's console
    is global: after this, rich output of the process goes to /dev/null.)
    """
    callback = instantiate(node)
    if isinstance(callback, RichProgressBar):
        sink = open(os.devnull, "w")  # noqa: SIM115 - used until the process ends
        terminal = {"file": sink, "force_terminal": True, "width": 120}
        callback = instantiate(node, console_kwargs=terminal)
    return callback


def make_runner(loop: str, workload: Workload) -> PlainLoop | LightningRunner:
    module = workload.build_module()
    if loop == "plain":
        return PlainLoop(workload, module)
    if loop in ("lightning", "lightning-configured"):
        return LightningRunner(workload, module, configured=loop == "lightning-configured")
    raise SettingError(f"loop={loop!r}: must be one of {', '.join(LOOPS)}")
