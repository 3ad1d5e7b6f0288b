"""StopOnNonFiniteLoss: a diverged run stops with a clear error and keeps its good checkpoint."""

from __future__ import annotations

import math

import pytest
import torch
from helpers import tiny_setup
from lightning.pytorch.callbacks import ModelCheckpoint

from chargpt.runs.checkpoint import load_checkpoint
from chargpt.training.callbacks.safety import NonFiniteLossError, StopOnNonFiniteLoss
from chargpt.training.checkpoint_io import AtomicCheckpointIO
from chargpt.training.module import GPTLightningModule


class DivergesAtStep(GPTLightningModule):
    """Trains normally, then its loss turns NaN from optimizer step `bad_step` (1-based) on."""

    bad_step = 5

    def training_step(self, batch, batch_idx):
        loss = super().training_step(batch, batch_idx)
        return loss * math.nan if self.global_step + 1 >= self.bad_step else loss


def test_nan_loss_stops_with_step_and_lr_and_keeps_the_good_checkpoint(tmp_path, play_file):
    checkpoints = ModelCheckpoint(dirpath=tmp_path, save_last=True, every_n_train_steps=2)
    trainer, module, datamodule = tiny_setup(
        play_file,
        DivergesAtStep,
        max_steps=10,
        val_check_interval=2,
        callbacks=[StopOnNonFiniteLoss(), checkpoints],
        plugins=[AtomicCheckpointIO()],
    )
    # The 5th step (numbered 4, as in the metrics) had lr 1e-3 x cosine(4/10) = 6.89e-4.
    with pytest.raises(NonFiniteLossError, match=r"not finite \(nan\) at step 4 \(lr 0\.000689\)"):
        trainer.fit(module, datamodule=datamodule)
    model, _ = load_checkpoint(tmp_path / "last.ckpt")
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert torch.load(tmp_path / "last.ckpt", weights_only=True)["global_step"] == 4


def test_finite_training_is_not_stopped(play_file):
    trainer, module, datamodule = tiny_setup(
        play_file, max_steps=3, callbacks=[StopOnNonFiniteLoss()], enable_checkpointing=False
    )
    trainer.fit(module, datamodule=datamodule)
    assert trainer.global_step == 3
