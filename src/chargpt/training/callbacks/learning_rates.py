"""The learning rate as one curve per distinct rate: `lr`, or `lr/<group>` when groups differ."""

from __future__ import annotations

import lightning as L

from chargpt.training.module import writes_logs_after
from chargpt.training.optim import parameter_group_name

LR_KEY = "lr"


class LearningRates(L.Callback):
    """Log the learning rate after each optimizer step that Lightning writes logs for.

    Groups that share their rate (AdamW's decay and no-decay groups, under one schedule) give
    one curve, `lr`; groups whose rates differ give `lr/<name>` each (`lr/decay`,
    `lr/no_decay`). Lightning's LearningRateMonitor draws a curve per group and optimizer,
    named by index (`lr-AdamW/pg1`, `lr-AdamW/pg2`), also when they are the same curve.
    """

    def __init__(self) -> None:
        super().__init__()
        self._rates: dict[str, float] = {}

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int
    ) -> None:
        # Read before the step: once it is taken, the scheduler has moved to the next rate.
        self._rates = learning_rates(trainer.optimizers)

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int
    ) -> None:
        if trainer.loggers and self._rates and writes_logs_after(trainer, trainer.global_step):
            pl_module.log_dict(self._rates, on_step=True, on_epoch=False)


def learning_rates(optimizers: list) -> dict[str, float]:
    """`{"lr": rate}` when every parameter group has the same rate, else `{"lr/<group>": ...}`."""
    named = {}
    for optimizer in optimizers:
        for index, group in enumerate(optimizer.param_groups):
            named[f"{LR_KEY}/{parameter_group_name(group, index)}"] = float(group["lr"])
    if len(set(named.values())) <= 1:
        return {LR_KEY: next(iter(named.values()))} if named else {}
    return named
