"""Ctrl+C and SIGTERM: save `last.ckpt` between two optimizer steps, then stop."""

from __future__ import annotations

import os
import signal
import threading
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException

from chargpt.errors import ChargptError

SIGNAL_NAMES = {signal.SIGINT: "Ctrl+C", signal.SIGTERM: "SIGTERM"}


class TrainingInterrupted(ChargptError):
    """Ctrl+C or SIGTERM during training, raised between two optimizer steps."""

    def __init__(self, signal_name: str) -> None:
        super().__init__(f"interrupted ({signal_name})")
        self.signal_name = signal_name
        self.saved_path: str | None = None  # set once last.ckpt is written


class CheckpointOnInterrupt(L.Callback):
    """On Ctrl+C or SIGTERM, save `last.ckpt` between two optimizer steps, for `ckpt_path=last`.

    The signal only sets a flag; the stop happens before the next batch that begins an optimizer
    step, so the checkpoint holds whole steps (also with gradient accumulation) and every metric
    of the last one has been logged. A second Ctrl+C stops at once, without saving.
    """

    def __init__(self) -> None:
        super().__init__()
        self.requested: str | None = None
        self._previous_handlers: dict[int, Any] = {}

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if threading.current_thread() is threading.main_thread():  # signals reach it alone
            for signum in SIGNAL_NAMES:
                self._previous_handlers[signum] = signal.signal(signum, self._request_stop)

    def _request_stop(self, signum: int, frame: object) -> None:
        if self.requested == "Ctrl+C" and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = SIGNAL_NAMES[signum]
        print(f"\n{self.requested}: stopping after this step to save a checkpoint ...", flush=True)

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int
    ) -> None:
        if batch_idx % trainer.accumulate_grad_batches != 0:
            return  # in the middle of an optimizer step
        requested = self.requested is not None
        if trainer.world_size > 1:  # every process stops at the same step
            requested = trainer.strategy.reduce_boolean_decision(requested, all=False)
        if requested:
            raise TrainingInterrupted(self.requested or "in another process")

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._restore_handlers()

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        self._restore_handlers()
        if not isinstance(exception, TrainingInterrupted):
            return  # a failed run keeps its last good checkpoint untouched
        checkpoint = trainer.checkpoint_callback
        if isinstance(checkpoint, ModelCheckpoint) and checkpoint.dirpath:
            path = os.path.join(
                checkpoint.dirpath, checkpoint.CHECKPOINT_NAME_LAST + checkpoint.FILE_EXTENSION
            )
            trainer.save_checkpoint(path, weights_only=False)  # the full training state
            exception.saved_path = path

    def _restore_handlers(self) -> None:
        for signum, handler in self._previous_handlers.items():
            signal.signal(signum, handler)
        self._previous_handlers.clear()


# A plain KeyboardInterrupt (a second Ctrl+C) or Lightning's SIGTERMException (outside training)
# can land mid-step: nothing is saved for them.
INTERRUPTIONS = (TrainingInterrupted, SIGTERMException, KeyboardInterrupt)
