"""End to end through run.py, as a user runs it."""

from __future__ import annotations

import json
import math

import pytest
from helpers import TINY, csv_metric, run, wandb_summary

from chargpt.checkpoint import load_checkpoint


def test_train_writes_checkpoints_metrics_wandb_and_a_sample(tmp_path, play_file):
    run_dir = tmp_path / "run"
    result = run(["data=text", f"data.path={play_file}", *TINY, f"hydra.run.dir={run_dir}"])
    # Validated at the interval (10) and at the last step (15), which the interval misses.
    assert "--- sample at step 10 ---" in result.stdout
    assert "--- sample at step 15 ---" in result.stdout
    assert f"best ckpt:    {run_dir}" in result.stdout
    assert (run_dir / "checkpoints" / "best.ckpt").is_file()
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert len(csv_metric(run_dir, "val/loss")) == 2
    assert len(csv_metric(run_dir, "test/loss")) == 1

    summary = wandb_summary(run_dir)
    assert summary["config"]["model"]["n_layer"] == 2
    assert summary["config"]["data"]["path"] == str(play_file)
    assert "val/loss" in json.dumps(summary)

    model, tokenizer = load_checkpoint(run_dir / "checkpoints" / "best.ckpt")
    assert model.config.n_layer == 2 and tokenizer.vocab_size == model.config.vocab_size


def test_multirun_makes_separate_runs(tmp_path, play_file):
    sweep_dir = tmp_path / "sweep"
    run(
        [
            "-m",
            "data=text",
            f"data.path={play_file}",
            *TINY,
            "trainer.max_steps=10",
            "model.norm_position=pre,post",
            f"hydra.sweep.dir={sweep_dir}",
        ]
    )
    positions = []
    for job in ("0", "1"):
        assert (sweep_dir / job / "checkpoints" / "last.ckpt").is_file()
        config = wandb_summary(sweep_dir / job)["config"]
        positions.append(config["model"]["norm_position"])
    assert positions == ["pre", "post"]


def test_experiment_runs_from_another_directory(tmp_path, play_file):
    run_dir = tmp_path / "run"
    run(
        [
            "experiment=smoke",
            "data=text",
            f"data.path={play_file}",
            "trainer.max_steps=5",
            "logger=csv",
            f"hydra.run.dir={run_dir}",
        ],
        cwd=tmp_path,
    )
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()


def test_bad_model_setting_fails_before_reading_data(tmp_path):
    empty_data_dir = tmp_path / "data"
    result = run(
        ["model.n_head=3", f"paths.data_dir={empty_data_dir}", f"hydra.run.dir={tmp_path / 'run'}"],
        check=False,
    )
    assert result.returncode != 0
    assert "model.d_model=128 is not divisible by model.n_head=3" in result.stderr
    assert not empty_data_dir.exists()  # no download was attempted


def test_val_check_interval_counts_optimizer_steps(tmp_path, play_file):
    result = run(
        [
            "data=text",
            f"data.path={play_file}",
            *TINY,
            "trainer.max_steps=6",
            "trainer.val_check_interval=3",
            "trainer.accumulate_grad_batches=2",
            "logger=csv",
            f"hydra.run.dir={tmp_path / 'run'}",
        ]
    )
    assert "--- sample at step 3 ---" in result.stdout
    assert "--- sample at step 6 ---" in result.stdout


def test_bad_sample_prompt_fails_at_start_and_marks_the_wandb_run_failed(tmp_path, play_file):
    run_dir = tmp_path / "run"
    result = run(
        [
            "data=text",
            f"data.path={play_file}",
            *TINY,
            "callbacks.sample.prompt=Q",
            f"hydra.run.dir={run_dir}",
        ],
        check=False,
    )
    assert result.returncode != 0
    assert "callbacks.sample.prompt='Q' has characters the corpus lacks: 'Q'" in result.stderr
    summary = wandb_summary(run_dir)
    assert summary["state"] == "failed" and summary["exit_code"] == 1


def test_runs_without_any_logger(tmp_path, play_file):
    run_dir = tmp_path / "run"
    run(["data=text", f"data.path={play_file}", *TINY, "logger=none", f"hydra.run.dir={run_dir}"])
    assert (run_dir / "checkpoints" / "best.ckpt").is_file()
    assert not (run_dir / "wandb").exists() and not (run_dir / "csv").exists()


def test_tensorboard_logger_writes_events(tmp_path, play_file):
    run_dir = tmp_path / "run"
    run(
        [
            "data=text",
            f"data.path={play_file}",
            *TINY,
            "logger=tensorboard",
            f"hydra.run.dir={run_dir}",
        ]
    )
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))


def test_short_real_run_learns_shakespeare(tmp_path, shared_data_dir):
    run_dir = tmp_path / "run"
    run(
        [
            f"paths.data_dir={shared_data_dir}",
            "model/size=tiny",
            "trainer.max_steps=300",
            "trainer.val_check_interval=150",
            "logger=csv",
            f"hydra.run.dir={run_dir}",
        ]
    )
    assert min(csv_metric(run_dir, "val/loss")) < 0.65 * math.log(65)


@pytest.mark.slow
def test_default_run_reaches_the_advertised_loss(tmp_path, shared_data_dir):
    """`python run.py` with no overrides: val loss <= 1.90 on tiny-shakespeare."""
    run_dir = tmp_path / "run"
    result = run([f"paths.data_dir={shared_data_dir}", f"hydra.run.dir={run_dir}"], timeout=600)
    assert min(csv_metric(run_dir, "val/loss")) <= 1.90
    assert "--- sample at step 1000 ---" in result.stdout
