"""`GPTLightningModule`: trains a `GPT` and saves everything a checkpoint needs to rebuild it."""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import Any

import lightning as L
import torch
from torch import Tensor

from chargpt.data.tokenizer import CharTokenizer
from chargpt.errors import SettingError
from chargpt.model import GPT, GPTConfig
from chargpt.training.optim import OptimizerConfig, ScheduleConfig, build_optimizer


class GPTLightningModule(L.LightningModule):
    """Receives plain data only (model config, optimizer and schedule settings, vocabulary).

    Those are saved as hyperparameters, so a `.ckpt` alone rebuilds the model and its tokenizer.
    `compile` (torch.compile the training step) is how this launch trains, not what it trains:
    it is not saved, and a run may resume with it on or off.
    """

    def __init__(
        self,
        model: dict[str, Any],
        optimizer: dict[str, Any],
        scheduler: dict[str, Any],
        tokenizer: dict[str, Any],
        compile: bool = False,
    ) -> None:
        super().__init__()
        check_compile(compile)
        self.model_config = GPTConfig(**model)
        self.optimizer_config = OptimizerConfig(**optimizer)
        self.schedule = ScheduleConfig(**scheduler)
        self.tokenizer = CharTokenizer.from_dict(tokenizer)
        # Every field, defaults included: a later change of a default must not alter old models.
        # logger=False: the wiring layer logs the whole run config, these would shadow its keys.
        complete = {
            "model": self.model_config.to_dict(),
            "optimizer": asdict(self.optimizer_config),
            "scheduler": asdict(self.schedule),
            "tokenizer": self.tokenizer.to_dict(),
        }
        self.save_hyperparameters(complete, logger=False)
        if self.tokenizer.vocab_size != self.model_config.vocab_size:
            raise SettingError(
                f"the tokenizer has {self.tokenizer.vocab_size} characters but "
                f"model.vocab_size={self.model_config.vocab_size}"
            )
        self.model = GPT(self.model_config)
        # Only the training step is compiled: evaluation and sampling call the model with other
        # shapes, each of which would recompile. A compiled function, not a compiled submodule,
        # so the weights keep their `model.` names in checkpoints (no `_orig_mod.` prefix).
        self._training_loss = torch.compile(self._loss) if compile else self._loss
        self.training_started = False  # set once Lightning has restored a resumed run's state

    def on_train_start(self) -> None:
        self.training_started = True

    def forward(self, idx: Tensor, targets: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        return self.model(idx, targets)

    def training_loss(self, x: Tensor, y: Tensor) -> Tensor:
        """The mean training loss of a batch, through torch.compile when `compile`."""
        return self._training_loss(x, y)

    def _loss(self, x: Tensor, y: Tensor) -> Tensor:
        return self.model(x, y)[1]

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        x, y = batch
        loss = self.training_loss(x, y)
        if writes_logs_after(self.trainer, self.global_step + 1):
            # Moved to the CPU once per log interval: the progress bar reads its metrics after
            # every step, and reading a GPU tensor waits for the GPU to finish its queue.
            self.log("train/loss", loss.detach().cpu(), prog_bar=True)
        return loss

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def _evaluate(self, batch: tuple[Tensor, Tensor], split: str) -> None:
        x, y = batch
        _, loss = self.model(x, y)
        # Equal-sized windows: the mean over batches, weighted by batch size, is the mean per char.
        # sync_dist: under DDP each process sees part of the split; the metric is over all of it.
        self.log(f"{split}/loss", loss, prog_bar=True, batch_size=x.size(0), sync_dist=True)
        self.log(f"{split}/bpc", loss / math.log(2), batch_size=x.size(0), sync_dist=True)

    def configure_optimizers(self) -> dict[str, Any]:
        optimizer = build_optimizer(self.model, self.optimizer_config)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, self.schedule.lr_factor)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step", "frequency": 1},
        }

    def configure_gradient_clipping(
        self,
        optimizer: torch.optim.Optimizer,
        gradient_clip_val: float | None = None,
        gradient_clip_algorithm: str | None = None,
    ) -> None:
        """Clip the true gradients, with every AdamW implementation and every precision.

        Lightning refuses to clip for a fused optimizer under mixed precision, even under bf16,
        where nothing is scaled: a fused step unscales 16-bit gradients itself, after clipping.
        Unscaling them here first makes clipping valid; the scaler then skips its own unscaling.
        """
        if not gradient_clip_val:
            return
        precision = self.trainer.precision_plugin
        scaler = getattr(precision, "scaler", None)
        if scaler is not None and getattr(optimizer, "_step_supports_amp_scaling", False):
            scaler.unscale_(optimizer)
        if gradient_clip_algorithm == "value":
            precision.clip_grad_by_value(optimizer, gradient_clip_val)
        else:
            precision.clip_grad_by_norm(optimizer, gradient_clip_val)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Dropout draws from torch's global generators: a resumed run must continue their streams.
        checkpoint["rng_states"] = {"cpu": torch.get_rng_state()}
        if torch.cuda.is_available():
            checkpoint["rng_states"]["cuda"] = torch.cuda.get_rng_state_all()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        states = checkpoint.get("rng_states")
        if states is None:
            return
        torch.set_rng_state(states["cpu"])
        if "cuda" in states and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(states["cuda"])


def check_compile(compile: object) -> None:
    if not isinstance(compile, bool):
        raise SettingError(f"compile={compile!r}: must be true or false")


def writes_logs_after(trainer: L.Trainer, step: int) -> bool:
    """Whether Lightning writes logs after optimizer step `step` (counted from 1).

    It does every `log_every_n_steps` steps, and at the last. A value logged at any other step
    reaches no logger, yet costs a `self.log` call (about half a millisecond on a CPU).
    """
    every = trainer.log_every_n_steps
    return (every > 0 and step % every == 0) or step >= trainer.max_steps > 0
