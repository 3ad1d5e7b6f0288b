"""The progress bar of a step-counted run: `step k/max_steps`, the losses and tokens/s."""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import RichProgressBar

TOKENS_PER_S_KEY = "perf/tokens_per_s"  # the throughput callback's metric
SHOWN_NAMES = {TOKENS_PER_S_KEY: "tokens/s"}


class StepProgressBar(RichProgressBar):
    """Lightning's rich bar, for runs that are one endless epoch ended by max_steps.

    Lightning titles the bar `Epoch 0/-2` (max_epochs is -1) and adds the logger's version
    (`v_num`, a wandb id) to the metrics; here it reads `step` (`batch` under gradient
    accumulation, where the bar counts batches) and shows tokens/s as a whole number.
    """

    @property
    def total_train_batches(self) -> int | float:
        """The whole run's batches: Lightning counts only those left (a resumed run would read
        `step 8/3`), while the bar's count goes on from the restored step."""
        trainer = self.trainer
        if trainer.max_steps is not None and trainer.max_steps > 0:
            return trainer.max_steps * trainer.accumulate_grad_batches
        return super().total_train_batches

    def _get_train_description(self, current_epoch: int) -> str:
        unit = "step" if self.trainer.accumulate_grad_batches == 1 else "batch"
        return f"{unit:{len(self.validation_description)}}"  # as wide: the bar does not jump

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
        items = super().get_metrics(trainer, pl_module)
        items.pop("v_num", None)
        return {SHOWN_NAMES.get(name, name): _shown(name, value) for name, value in items.items()}


def _shown(name: str, value: Any) -> Any:
    if name == TOKENS_PER_S_KEY and isinstance(value, int | float):
        return f"{value:,.0f}"
    return value
