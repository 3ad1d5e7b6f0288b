"""Callbacks: samples at each validation, throughput, and stopping safely (NaN, Ctrl+C, SIGTERM)."""

from __future__ import annotations

import functools
import os
import signal
import threading
import time
from collections import deque
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger
from lightning.pytorch.utilities import rank_zero_only
from lightning.pytorch.utilities.exceptions import SIGTERMException
from torch import Tensor

from chargpt.errors import ChargptError
from chargpt.generate import check_output_size, generate_text
from chargpt.model.gpt import WINDOWS
from chargpt.model.sampling import check_sampling_args
from chargpt.training.module import GPTLightningModule, writes_logs_after


class SampleCallback(L.Callback):
    """Generate from a fixed prompt with a fixed seed after each validation; print and log it.

    The same prompt and seed every time make successive samples differ only through the model.
    """

    def __init__(
        self,
        prompt: str = "\n",
        max_new_tokens: int = 200,
        temperature: float = 0.8,
        top_k: int | None = None,
        top_p: float | None = None,
        seed: int = 0,
        stop: str | None = None,
        num_samples: int = 1,
        window: str = "slide",
    ) -> None:
        super().__init__()
        if num_samples < 1:
            raise ValueError(f"callbacks.sample.num_samples={num_samples}: must be >= 1")
        if window not in WINDOWS:
            raise ValueError(
                f"callbacks.sample.window={window!r}: must be one of {', '.join(WINDOWS)}"
            )
        self.window = window
        self.stop = stop
        self.num_samples = num_samples
        self.prompt = prompt
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.top_k = top_k
        self.top_p = top_p
        self.seed = seed
        self.rows: list[list] = []

    def on_fit_start(self, trainer: L.Trainer, pl_module: GPTLightningModule) -> None:
        self.check(pl_module)

    def check(self, pl_module: GPTLightningModule) -> None:
        """Check the prompt and settings now, not at the first validation minutes later."""
        if not self.prompt:
            raise ValueError("callbacks.sample.prompt is empty: give at least one character")
        if self.stop is not None and (
            len(self.stop) != 1 or pl_module.tokenizer.unknown_characters(self.stop)
        ):
            raise ValueError(
                f"callbacks.sample.stop={self.stop!r}: must be one character of the corpus"
            )
        unknown = pl_module.tokenizer.unknown_characters(self.prompt)
        if unknown:
            raise ValueError(
                f"callbacks.sample.prompt={self.prompt!r} has characters the corpus lacks: "
                f"{', '.join(map(repr, unknown))}; choose a prompt from the corpus's characters"
            )
        try:
            check_sampling_args(
                pl_module.tokenizer.vocab_size, self.temperature, self.top_k, self.top_p
            )
            check_output_size(self.num_samples, len(self.prompt), self.max_new_tokens)
        except ValueError as error:
            raise ValueError(f"callbacks.sample.{error}") from None

    @rank_zero_only
    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: GPTLightningModule) -> None:
        if trainer.sanity_checking:
            return
        text = self.sample(pl_module)
        pl_module.print(f"\n--- sample at step {trainer.global_step} ---\n{text}\n---")
        self.rows.append([trainer.global_step, text])
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                # wandb tables are immutable: log the whole history as a new version each time.
                logger.log_text(key="samples", columns=["step", "text"], data=list(self.rows))
            elif isinstance(logger, TensorBoardLogger):
                logger.experiment.add_text("samples", text, trainer.global_step)

    def sample(self, pl_module: GPTLightningModule) -> str:
        was_training = pl_module.training
        pl_module.eval()
        texts = generate_text(
            pl_module.model,
            pl_module.tokenizer,
            self.prompt,
            self.max_new_tokens,
            temperature=self.temperature,
            top_k=self.top_k,
            top_p=self.top_p,
            stop=self.stop,
            seed=self.seed,
            num_samples=self.num_samples,
            window=self.window,
        )
        pl_module.train(was_training)
        if self.stop == "\n":  # one line each, as the corpus has them (names)
            return "\n".join(text.strip("\n") for text in texts)
        return "\n---\n".join(texts)


class RunCheckpoint(ModelCheckpoint):
    """Lightning's ModelCheckpoint, resumable after its run folder was moved, copied or renamed.

    A checkpoint records the folder it was saved in. Lightning forgets the best score and the
    last checkpoint when that folder differs, so a moved run writes `last-v1.ckpt` beside a stale
    `last.ckpt`, and its next best would be judged against nothing (and could delete a file in
    the original folder). Here every recorded path is read as the same file in this folder.
    """

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        # Always relocated, also when the folder looks unchanged: a checkpoint is untrusted, and
        # Lightning deletes the recorded paths it replaces (recursively).
        if self.dirpath is None:
            super().load_state_dict(state_dict)
            return
        relocate = functools.partial(_relocate, folder=self.dirpath)
        moved = dict(state_dict, dirpath=self.dirpath)
        for key in ("best_model_path", "kth_best_model_path", "last_model_path"):
            if key in moved:
                moved[key] = relocate(moved[key])
        best_k = moved.get("best_k_models")
        moved["best_k_models"] = {
            relocate(path): score
            for path, score in (best_k.items() if isinstance(best_k, dict) else ())
            if relocate(path)
        }
        super().load_state_dict(moved)


def _relocate(path: object, folder: str) -> str:
    """The checkpoint file `path` names, as a file directly in `folder` ("": none).

    Only a `.ckpt` file name is kept: a recorded path can never point outside the folder.
    """
    if not isinstance(path, str) or not path:
        return ""
    name = os.path.basename(os.path.normpath(path))
    if not name.endswith(".ckpt") or name in (".ckpt", os.curdir, os.pardir):
        return ""
    return os.path.join(folder, name)


class ValidateOnLastStep(L.Callback):
    """Validate when training reaches max_steps, even between val_check_interval points.

    Without it, a run whose max_steps is not a multiple of the interval ends unvalidated: its
    last steps count for neither the best checkpoint nor the reported loss.

    A run resumed from such a validation's checkpoint would log every step one too low:
    Lightning saves its logging step (`_batches_that_stepped`, no public API) before counting
    the last step and adds it back on resume only after validations it scheduled itself. With
    one optimizer it equals the optimizer step between batches, so it is realigned there.
    """

    def on_train_batch_start(self, trainer: L.Trainer, *args: object) -> None:
        epoch_loop = trainer.fit_loop.epoch_loop
        if epoch_loop._batches_that_stepped != trainer.global_step:
            epoch_loop._batches_that_stepped = trainer.global_step

    def on_train_batch_end(self, trainer: L.Trainer, *args: object) -> None:
        if 0 < trainer.max_steps <= trainer.global_step:
            # A stop request makes Lightning validate before it leaves the loop.
            trainer.should_stop = True


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
