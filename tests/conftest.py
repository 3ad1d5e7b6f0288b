"""Shared fixtures: offline wandb in a temp folder, fixed seeds, a small text corpus."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

PROJECT_ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = PROJECT_ROOT / "conf"

# A few KB of play-like text with a handful of distinct characters: enough to train on in seconds.
PLAY = (
    "FIRST CITIZEN:\nBefore we proceed any further, hear me speak.\n\n"
    "ALL:\nSpeak, speak.\n\n"
    "FIRST CITIZEN:\nYou are all resolved rather to die than to famish?\n\n"
    "ALL:\nResolved. resolved.\n\n"
)


@pytest.fixture(autouse=True)
def isolated_environment(tmp_path_factory: pytest.TempPathFactory, monkeypatch) -> None:
    """wandb offline with its files in a temp folder; no credentials leak in; fixed seeds."""
    wandb_dir = tmp_path_factory.mktemp("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(wandb_dir))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(wandb_dir / "config"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(wandb_dir / "cache"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    torch.manual_seed(0)


@pytest.fixture
def play_text() -> str:
    return PLAY * 40


@pytest.fixture
def play_file(tmp_path: Path, play_text: str) -> Path:
    path = tmp_path / "play.txt"
    path.write_text(play_text, encoding="utf-8")
    return path


@pytest.fixture
def shared_data_dir() -> str:
    """Where the real corpora are: CHARGPT_DATA_DIR, else the project's data/ (downloaded there)."""
    return os.environ.get("CHARGPT_DATA_DIR", str(PROJECT_ROOT / "data"))


@pytest.fixture(scope="session")
def trained_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real checkpoint written by the Lightning Trainer after a few steps on a tiny model."""
    import lightning as L

    from chargpt.data.datamodule import CharDataModule
    from chargpt.training.module import GPTLightningModule

    folder = tmp_path_factory.mktemp("checkpoint")
    corpus = folder / "play.txt"
    corpus.write_text(PLAY * 40, encoding="utf-8")
    datamodule = CharDataModule(corpus=None, path=str(corpus), block_size=16, batch_size=4)
    datamodule.setup("fit")
    module = GPTLightningModule(
        model=dict(
            vocab_size=datamodule.vocab_size, block_size=16, n_layer=1, n_head=2, d_model=16
        ),
        optimizer={},
        scheduler=dict(warmup_steps=0, decay_steps=5),
        tokenizer=datamodule.tokenizer.to_dict(),
    )
    trainer = L.Trainer(
        max_steps=5,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
    )
    trainer.fit(module, datamodule=datamodule)
    path = folder / "model.ckpt"
    trainer.save_checkpoint(path)
    return path
