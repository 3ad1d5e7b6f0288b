"""Training callbacks: stopping on a non-finite loss, measuring throughput."""

from __future__ import annotations

import math

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from chargpt.checkpoint import load_checkpoint
from chargpt.data.datamodule import CharDataModule
from chargpt.training.callbacks import (
    NonFiniteLossError,
    RunCheckpoint,
    SampleCallback,
    StopOnNonFiniteLoss,
    TrainingThroughput,
)
from chargpt.training.checkpoint_io import AtomicCheckpointIO
from chargpt.training.module import GPTLightningModule


class DivergesAtStep(GPTLightningModule):
    """Trains normally, then its loss turns NaN from optimizer step `bad_step` (1-based) on."""

    bad_step = 5

    def training_step(self, batch, batch_idx):
        loss = super().training_step(batch, batch_idx)
        return loss * math.nan if self.global_step + 1 >= self.bad_step else loss


def tiny_setup(play_file, module_class=GPTLightningModule, **trainer_kwargs):
    datamodule = CharDataModule(corpus=None, path=str(play_file), block_size=16, batch_size=4)
    datamodule.setup("fit")
    module = module_class(
        model=dict(
            vocab_size=datamodule.vocab_size, block_size=16, n_layer=1, n_head=2, d_model=16
        ),
        optimizer=dict(lr=1e-3),
        scheduler=dict(warmup_steps=0, decay_steps=10),
        tokenizer=datamodule.tokenizer.to_dict(),
    )
    trainer = L.Trainer(
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=1,
        **trainer_kwargs,
    )
    return trainer, module, datamodule


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


def test_throughput_counts_training_tokens_per_second(play_file):
    throughput = TrainingThroughput(window=2)
    trainer, module, datamodule = tiny_setup(
        play_file,
        max_steps=4,
        val_check_interval=2,
        callbacks=[throughput],
        enable_checkpointing=False,
    )
    trainer.fit(module, datamodule=datamodule)
    assert throughput.tokens_per_s is not None and throughput.tokens_per_s > 0
    # 4 batches of 4 windows of 16 characters, over no more time than training took.
    assert throughput._tokens == 4 * 4 * 16
    assert trainer.logged_metrics["perf/tokens_per_s"] > 0


def test_sample_window_is_the_one_generation_uses(play_file):
    """Past block_size (16) the two windows see other contexts; within it, the same."""
    _, module, _ = tiny_setup(play_file)
    with torch.no_grad():  # peaked, context-sensitive predictions instead of near-uniform ones
        for p in module.model.parameters():
            p.mul_(20.0)
    samples = {
        window: SampleCallback(prompt="A", max_new_tokens=40, seed=1, window=window).sample(module)
        for window in ("slide", "halve")
    }
    assert samples["slide"][:17] == samples["halve"][:17]
    assert samples["slide"] != samples["halve"]


def test_a_moved_checkpoint_callback_keeps_its_scores_under_the_new_folder(tmp_path):
    old, new = tmp_path / "cluster" / "checkpoints", tmp_path / "home" / "checkpoints"
    saved = RunCheckpoint(dirpath=old, filename="best", monitor="val/loss", save_last=True)
    saved.best_model_path = str(old / "best.ckpt")
    saved.best_model_score = torch.tensor(1.5)
    saved.best_k_models = {str(old / "best.ckpt"): torch.tensor(1.5)}
    saved.last_model_path = str(old / "last.ckpt")
    state = saved.state_dict()
    state["kth_best_model_path"] = "/etc/passwd"  # never a file outside the run's folder

    moved = RunCheckpoint(dirpath=new, filename="best", monitor="val/loss", save_last=True)
    moved.load_state_dict(state)
    assert moved.best_model_path == str(new / "best.ckpt")
    assert moved.last_model_path == str(new / "last.ckpt")
    assert moved.best_k_models == {str(new / "best.ckpt"): torch.tensor(1.5)}
    assert moved.kth_best_model_path == ""
    assert float(moved.best_model_score) == 1.5  # a worse model cannot replace best.ckpt


@pytest.mark.parametrize("dirpath", ["same", None])
def test_recorded_paths_never_leave_the_checkpoint_folder(tmp_path, dirpath):
    """Lightning deletes the last checkpoint it replaces: a crafted path must not name a folder."""
    folder = tmp_path / "run" / "checkpoints"
    precious = tmp_path / "precious"
    precious.mkdir()
    callback = RunCheckpoint(dirpath=folder, filename="best", monitor="val/loss", save_last=True)
    crafted = {
        "dirpath": callback.dirpath if dirpath == "same" else None,
        "best_model_score": None,
        "best_model_path": "",
        "last_model_path": f"{callback.dirpath}/../../precious",
        "kth_best_model_path": f"{callback.dirpath}/../../precious/x.ckpt",
        "best_k_models": {f"{callback.dirpath}/../../precious": 1.0},
    }
    if dirpath is None:
        del crafted["dirpath"]
    callback.load_state_dict(crafted)
    assert callback.last_model_path == "" and callback.best_k_models == {}
    assert callback.kth_best_model_path == str(folder / "x.ckpt")


def test_removing_a_checkpoint_never_removes_a_folder_or_a_link(tmp_path):
    folder = tmp_path / "precious"
    folder.mkdir()
    (folder / "kept.ckpt").write_text("x")
    link = tmp_path / "link.ckpt"
    link.symlink_to(folder / "kept.ckpt")
    checkpoint_io = AtomicCheckpointIO()
    for path in (folder, link, tmp_path / "gone.txt"):
        checkpoint_io.remove_checkpoint(path)
    assert (folder / "kept.ckpt").read_text() == "x" and link.is_symlink()
    checkpoint_io.remove_checkpoint(folder / "kept.ckpt")
    assert not (folder / "kept.ckpt").exists()
