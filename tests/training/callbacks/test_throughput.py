"""TrainingThroughput: the whole run's training tokens per second, validation excluded."""

from __future__ import annotations

import math

import lightning as L
import pytest
import torch
from helpers import tiny_setup

from chargpt.runs.checkpoint import CheckpointError
from chargpt.training.callbacks import throughput as throughput_module
from chargpt.training.callbacks.throughput import TrainingThroughput, state_problem

TOKENS_PER_BATCH = 4 * 16  # tiny_setup: 4 windows of 16 characters


class Clock(L.Callback):
    """A fake clock: each training batch takes 1 s, each validation batch 100 s."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def on_train_batch_start(self, *args: object) -> None:
        self.now += 1.0

    def on_validation_batch_start(self, *args: object) -> None:
        self.now += 100.0


@pytest.fixture
def clock(monkeypatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(throughput_module, "perf_counter", clock)
    return clock


def train(play_file, clock: Clock, throughput: TrainingThroughput, max_steps: int, **kwargs):
    trainer, module, datamodule = tiny_setup(
        play_file,
        max_steps=max_steps,
        val_check_interval=2,
        log_every_n_steps=1,
        callbacks=[clock, throughput],
        enable_checkpointing=False,
    )
    trainer.fit(module, datamodule=datamodule, **kwargs)
    return trainer


def test_the_rate_is_the_whole_runs_training_tokens_per_training_second(play_file, clock):
    throughput = TrainingThroughput()
    trainer = train(play_file, clock, throughput, max_steps=4)
    assert throughput.tokens_seen == 4 * TOKENS_PER_BATCH
    # 4 batches of 1 s; the 2 validations (100 s each) do not count.
    assert throughput.tokens_per_s == TOKENS_PER_BATCH / 1.0
    # What was logged last is the figure run.json records, not a recent window's rate.
    assert trainer.logged_metrics["perf/tokens_per_s"] == throughput.tokens_per_s


def test_a_resumed_run_goes_on_with_the_whole_runs_figures(play_file, clock, tmp_path):
    first = TrainingThroughput()
    trainer = train(play_file, clock, first, max_steps=2)
    trainer.save_checkpoint(tmp_path / "two.ckpt")
    clock.now += 1000.0  # the pause between the launches is not training time either
    resumed = TrainingThroughput()
    train(play_file, clock, resumed, max_steps=4, ckpt_path=tmp_path / "two.ckpt")
    assert resumed.tokens_seen == 4 * TOKENS_PER_BATCH
    assert resumed.training_s == pytest.approx(4.0)


@pytest.mark.parametrize(
    "state",
    [
        {},
        {"tokens_seen": -1, "training_s": 1.0},
        {"tokens_seen": True, "training_s": 1.0},
        {"tokens_seen": 1.5, "training_s": 1.0},
        {"tokens_seen": 10, "training_s": math.nan},
        {"tokens_seen": 10, "training_s": math.inf},
        {"tokens_seen": 10, "training_s": -2.0},
        {"tokens_seen": 10, "training_s": "1"},
        {"tokens_seen": 10**400, "training_s": 1.0},  # would overflow the rate's float
        {"tokens_seen": 10, "training_s": 0.0},
        {"tokens_seen": 10**12, "training_s": 5e-324},  # a rate no machine reaches
    ],
)
def test_a_checkpoints_throughput_state_is_checked(state):
    assert state_problem(state) is not None  # what resume_state checks before Lightning loads
    throughput = TrainingThroughput()
    with pytest.raises(CheckpointError, match="throughput state") as raised:
        throughput.load_state_dict(state)
    assert "\n" not in str(raised.value)
    assert (throughput.tokens_seen, throughput.training_s) == (0, 0.0)


def test_a_run_resumed_from_a_checkpoint_without_the_figures_keeps_a_true_rate(
    play_file, clock, tmp_path
):
    """A checkpoint written before chargpt saved them: the rate is over the launches since."""
    trainer = train(play_file, clock, TrainingThroughput(), max_steps=2)
    trainer.save_checkpoint(tmp_path / "two.ckpt")
    old = torch.load(tmp_path / "two.ckpt", weights_only=True)
    old["callbacks"] = {k: v for k, v in old["callbacks"].items() if "Throughput" not in k}
    torch.save(old, tmp_path / "old.ckpt")
    resumed = TrainingThroughput()
    train(play_file, clock, resumed, max_steps=4, ckpt_path=tmp_path / "old.ckpt")
    assert resumed.tokens_seen == 2 * TOKENS_PER_BATCH  # this launch's tokens...
    assert resumed.training_s == pytest.approx(2.0)  # ...in this launch's training time
    assert resumed.tokens_per_s == pytest.approx(TOKENS_PER_BATCH / 1.0)
