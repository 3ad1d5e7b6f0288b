"""Training throughput: the whole run's training tokens per second, validation excluded."""

from __future__ import annotations

import math
from time import perf_counter
from typing import Any

import lightning as L

from chargpt.runs.checkpoint import CheckpointError
from chargpt.training.module import writes_logs_after


class TrainingThroughput(L.Callback):
    """The run's training tokens and their rate so far, logged as `perf/tokens_per_s`.

    Training time runs from the start of training, or the end of a validation, to the end of the
    last training batch: validation is never counted. Only host-side numbers (batch shapes, the
    clock) are used, so measuring never waits for the accelerator. The count and the time are
    saved in checkpoints, so a resumed run goes on with the whole run's figures; the last logged
    rate and run.json's `tokens_per_s` are the same figure.
    """

    def __init__(self) -> None:
        super().__init__()
        self.tokens_seen = 0
        self.training_s = 0.0
        self._timed_since: float | None = None  # None while not training (validation)
        self._training = False

    @property
    def tokens_per_s(self) -> float | None:
        """Training tokens per second so far; None before any training time was counted."""
        return self.tokens_seen / self.training_s if self.training_s > 0 else None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._training = True
        self._timed_since = perf_counter()

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int
    ) -> None:
        now = perf_counter()
        if self._timed_since is not None:
            self.training_s += now - self._timed_since
        self._timed_since = now
        self.tokens_seen += batch[0].numel() * trainer.world_size
        rate = self.tokens_per_s
        if rate is not None and writes_logs_after(trainer, trainer.global_step):
            pl_module.log("perf/tokens_per_s", rate)

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._timed_since = None

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._training:  # not the sanity check before training, nor a validation after it
            self._timed_since = perf_counter()

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._training = False
        self._timed_since = None

    def state_dict(self) -> dict[str, Any]:
        return {"tokens_seen": self.tokens_seen, "training_s": self.training_s}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """The figures a checkpoint saved (untrusted): a token count and seconds, else an error."""
        tokens, seconds = state_dict.get("tokens_seen"), state_dict.get("training_s")
        if not (_is_count(tokens) and _is_seconds(seconds)):
            raise CheckpointError(
                "the checkpoint's throughput state is not a token count and training seconds "
                "(non-negative finite numbers); resume from a checkpoint that run.py wrote"
            )
        self.tokens_seen, self.training_s = tokens, float(seconds)


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_seconds(value: object) -> bool:
    real = isinstance(value, int | float) and not isinstance(value, bool)
    return real and math.isfinite(value) and value >= 0
