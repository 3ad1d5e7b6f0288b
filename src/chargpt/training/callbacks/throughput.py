"""Training throughput in tokens per second."""

from __future__ import annotations

import time
from collections import deque

import lightning as L

from chargpt.training.module import writes_logs_after


class TrainingThroughput(L.Callback):
    """Training tokens per second, validation excluded: logged as `perf/tokens_per_s`.

    Only host-side numbers (batch shapes, the clock) are used, so measuring never waits for the
    accelerator. The logged figure is the rate over the last `window` batches; `tokens_per_s`
    holds the whole run's rate once training ends.
    """

    def __init__(self, window: int = 25) -> None:
        super().__init__()
        self.window = window
        self.tokens_per_s: float | None = None
        self._recent: deque[tuple[float, int]] = deque(maxlen=window + 1)
        self._tokens = 0
        self._elapsed = 0.0
        self._resumed_at: float | None = None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._resumed_at = time.perf_counter()
        self._recent.append((self._resumed_at, 0))

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int
    ) -> None:
        self._tokens += batch[0].numel() * trainer.world_size
        self._recent.append((time.perf_counter(), self._tokens))
        (start, start_tokens), (end, end_tokens) = self._recent[0], self._recent[-1]
        if end > start and writes_logs_after(trainer, trainer.global_step):
            pl_module.log("perf/tokens_per_s", (end_tokens - start_tokens) / (end - start))

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._pause()

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._resumed_at is None and not trainer.sanity_checking:
            self._resumed_at = time.perf_counter()
            self._recent.clear()  # the window restarts: validation time is not training time
            self._recent.append((self._resumed_at, self._tokens))

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._pause()
        if self._elapsed > 0:
            self.tokens_per_s = self._tokens / self._elapsed

    def _pause(self) -> None:
        if self._resumed_at is not None:
            self._elapsed += time.perf_counter() - self._resumed_at
            self._resumed_at = None
