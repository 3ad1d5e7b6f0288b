"""One learning-rate curve per distinct rate, named by its parameter group."""

from __future__ import annotations

import csv

import lightning as L
import pytest
import torch
from helpers import tiny_setup
from lightning.pytorch.loggers import CSVLogger

from chargpt.training.callbacks.learning_rates import LearningRates, learning_rates


def _optimizer(*rates: float) -> torch.optim.Optimizer:
    groups = [
        {"params": [torch.nn.Parameter(torch.zeros(1))], "lr": rate, "name": name}
        for rate, name in zip(rates, ("decay", "no_decay"), strict=False)
    ]
    return torch.optim.AdamW(groups)


def test_groups_that_share_a_rate_give_one_curve():
    assert learning_rates([_optimizer(1e-3, 1e-3)]) == {"lr": 1e-3}


def test_groups_with_their_own_rates_give_a_curve_each_named_by_the_group():
    assert learning_rates([_optimizer(1e-3, 2e-3)]) == {"lr/decay": 1e-3, "lr/no_decay": 2e-3}


def test_a_group_restored_without_a_name_is_named_by_its_place():
    optimizer = _optimizer(1e-3, 2e-3)
    for group in optimizer.param_groups:
        del group["name"]
    assert set(learning_rates([optimizer])) == {"lr/decay", "lr/no_decay"}


def test_the_logged_rate_is_the_one_each_step_trained_at(play_file, tmp_path):
    _, module, data = tiny_setup(play_file)
    trainer = L.Trainer(
        max_steps=3,
        log_every_n_steps=1,
        callbacks=[LearningRates()],
        logger=CSVLogger(tmp_path, name="", version=""),
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
    )
    trainer.fit(module, datamodule=data)
    with open(tmp_path / "metrics.csv") as file:
        rates = [float(row["lr"]) for row in csv.DictReader(file) if row.get("lr")]
    peak = module.optimizer_config.lr
    expected = [peak * module.schedule.lr_factor(step) for step in range(3)]
    assert rates == pytest.approx(expected, rel=1e-6)  # logged as float32
    assert rates[0] != rates[2]
