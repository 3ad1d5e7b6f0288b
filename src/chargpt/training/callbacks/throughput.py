"""Training throughput: the whole run's training tokens per second, validation excluded."""

from __future__ import annotations

import math
from time import perf_counter
from typing import Any

import lightning as L

from chargpt.runs.checkpoint import CheckpointError
from chargpt.training.module import writes_logs_after


class TrainingThroughput(L.Callback):
    """The run's training tokens and their rate so far, logged as `perf/tokens_per_s`, and its
    training seconds so far as `perf/training_s` (compare's wall-time axis).

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
            pl_module.log("perf/tokens_per_s", rate, prog_bar=True)
            pl_module.log("perf/training_s", self.training_s)

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._timed_since = None

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._training:  # not the sanity check before training, nor a validation after it
            self._timed_since = perf_counter()

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._training = False
        self._timed_since = None

    def state_dict(self) -> dict[str, Any]:
        return {
            "tokens_seen": self.tokens_seen,
            "training_s": self.training_s,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """The figures a checkpoint saved (untrusted, checked by `state_problem` first)."""
        problem = state_problem(state_dict)
        if problem is not None:
            raise CheckpointError(f"the checkpoint's throughput state {problem}")
        self.tokens_seen, self.training_s = state_dict["tokens_seen"], state_dict["training_s"]
        self.training_s = float(self.training_s)


MAX_TOKENS = 2**62  # far beyond any run, yet a float holds it
MAX_TOKENS_PER_S = 1e15  # no machine trains faster: a larger rate is a crafted state


def state_problem(state: object) -> str | None:
    """What makes a saved throughput state unusable, None if it is a count and seconds."""
    tokens = state.get("tokens_seen") if isinstance(state, dict) else None
    seconds = state.get("training_s") if isinstance(state, dict) else None
    is_int = isinstance(tokens, int) and not isinstance(tokens, bool)
    is_count = is_int and 0 <= tokens <= MAX_TOKENS
    is_real = isinstance(seconds, int | float) and not isinstance(seconds, bool)
    if not (is_count and is_real and math.isfinite(seconds) and seconds >= 0):
        return (
            "is not a token count and training seconds (non-negative finite numbers); "
            "resume from a checkpoint that run.py wrote"
        )
    if tokens > 0 and not (seconds > 0 and tokens / seconds <= MAX_TOKENS_PER_S):
        return f"claims {tokens} tokens in {seconds} s; resume from a checkpoint that run.py wrote"
    return None
