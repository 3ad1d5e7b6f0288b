"""Stopping safely when the training loss becomes NaN or infinite."""

from __future__ import annotations

import os

import lightning as L
import torch
from torch import Tensor

from chargpt.errors import ChargptError


class NonFiniteLossError(ChargptError):
    """The training loss became NaN or infinite."""


class StopOnNonFiniteLoss(L.Callback):
    """Stop with a clear error when the training loss is NaN or infinite.

    The check runs before every validation, so no checkpoint with diverged weights is ever
    saved. On an accelerator the finite test stays on the device and is read only every
    `check_every_n_steps` and before validation; on CPU reading it costs nothing, so every step.
    Steps are numbered from 0, as in the logged metrics.
    """

    def __init__(self, check_every_n_steps: int = 25) -> None:
        super().__init__()
        self.check_every_n_steps = check_every_n_steps
        self._first_bad: Tensor | None = None  # the first non-finite step, or -1
        self._learning_rates: dict[int, float] = {}
        self._lr = float("nan")

    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module, optimizer) -> None:
        self._lr = optimizer.param_groups[0]["lr"]  # the step's own rate: the scheduler moves on

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int
    ) -> None:
        loss = outputs["loss"].detach() if isinstance(outputs, dict) else outputs.detach()
        step = trainer.global_step - 1
        if self._first_bad is None:
            self._first_bad = torch.full((), -1, dtype=torch.long, device=loss.device)
        newly_bad = ~torch.isfinite(loss) & (self._first_bad < 0)
        self._first_bad = torch.where(newly_bad, step, self._first_bad)
        self._learning_rates[step] = self._lr
        if loss.device.type == "cpu" or step % self.check_every_n_steps == 0:
            self.check(trainer, loss)

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self.check(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.check(trainer)

    def check(self, trainer: L.Trainer, loss: Tensor | None = None) -> None:
        if self._first_bad is None:
            return
        step = int(self._first_bad)
        diverged = step >= 0
        if trainer.world_size > 1:  # every process stops together, or the others would hang
            diverged = trainer.strategy.reduce_boolean_decision(diverged, all=False)
        if diverged:
            lr = self._learning_rates.get(step, float("nan"))
            value = "" if loss is None else f" ({float(loss)})"
            where = f"at step {step} (lr {lr:.3g})" if step >= 0 else "in another process"
            raise NonFiniteLossError(
                f"train/loss is not finite{value} {where}: training diverged; lower "
                "optimizer.lr, lengthen the warm-up (scheduler.warmup_ratio) or keep "
                f"trainer.gradient_clip_val; {_saved_so_far(trainer)}"
            )
        self._learning_rates.clear()


def _saved_so_far(trainer: L.Trainer) -> str:
    """What a failed run leaves to resume from: its last good checkpoint, if it saved one."""
    callback = trainer.checkpoint_callback
    saved = [
        path
        for path in (
            getattr(callback, "last_model_path", ""),
            getattr(callback, "best_model_path", ""),
        )
        if path and os.path.isfile(path)
    ]
    if not saved:
        return "no checkpoint had been saved yet"
    return f"the last good checkpoint is kept ({saved[0]})"
