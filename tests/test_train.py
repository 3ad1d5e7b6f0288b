"""End to end through run.py, as a user runs it."""

from __future__ import annotations

import csv
import json
import math
import re
import subprocess
import sys

import pytest
from helpers import PROJECT_ROOT, TINY, csv_metric, run, run_env, wandb_summary

from chargpt.runs.checkpoint import load_checkpoint


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
    # run.json's results: the test loss, the tokens trained on and their rate, as logged.
    record = json.loads((run_dir / "run.json").read_text())
    assert record["test_loss"] == pytest.approx(csv_metric(run_dir, "test/loss")[0])
    assert record["tokens_seen"] == 15 * 8 * 16  # steps x windows x characters
    assert record["tokens_per_s"] == pytest.approx(csv_metric(run_dir, "perf/tokens_per_s")[-1])

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
            "seed=3",
            f"hydra.sweep.dir={sweep_dir}",
        ]
    )
    positions = []
    for job in ("0", "1"):
        assert (sweep_dir / job / "checkpoints" / "last.ckpt").is_file()
        config = wandb_summary(sweep_dir / job)["config"]
        positions.append(config["model"]["norm_position"])
        # wandb's "Group by variant" pools a variant's seeds: the seed and paths are not in it.
        assert f"model.norm_position={positions[-1]}" in config["variant"]
        assert "seed" not in config["variant"] and "hydra" not in config["variant"]
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


def test_val_every_n_steps_counts_optimizer_steps(tmp_path, play_file):
    result = run(
        [
            "data=text",
            f"data.path={play_file}",
            *TINY,
            "trainer.max_steps=6",
            "trainer.val_every_n_steps=3",
            "trainer.accumulate_grad_batches=2",
            "logger=csv",
            f"hydra.run.dir={tmp_path / 'run'}",
        ]
    )
    assert "--- sample at step 3 ---" in result.stdout
    assert "--- sample at step 6 ---" in result.stdout


def test_bad_sample_prompt_fails_before_any_logging(tmp_path, play_file):
    run_dir = tmp_path / "run"
    result = run(
        [
            *TINY,
            "data=text",
            f"data.path={play_file}",
            "callbacks.sample.prompt=Q",
            f"hydra.run.dir={run_dir}",
        ],
        check=False,
        full_error=False,
    )
    assert result.returncode == 1
    assert "callbacks.sample.prompt='Q' has characters the corpus lacks: 'Q'" in result.stderr
    assert not run_dir.exists()  # no run folder, run.json or wandb run for a bad setting


def test_absurd_learning_rate_stops_the_run_and_marks_it_failed(tmp_path, play_file):
    run_dir = tmp_path / "run"
    absurd = ["optimizer.lr=1e6", "scheduler.warmup_ratio=0", "trainer.gradient_clip_val=null"]
    result = run(
        ["data=text", f"data.path={play_file}", *TINY, *absurd, f"hydra.run.dir={run_dir}"],
        check=False,
        full_error=False,
    )
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()[-1:]
    found = re.match(r"error: train/loss is not finite .* at step (\d+) \(lr ([0-9.e+-]+)\)", line)
    assert found and float(found[2]) > 1e5  # the step and its (absurd) learning rate
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "failed" and record["error"] == line.removeprefix("error: ")
    summary = wandb_summary(run_dir)
    assert summary["state"] == "failed" and summary["exit_code"] == 1
    assert not (run_dir / "checkpoints" / "last.ckpt").exists()  # nothing diverged was saved
    assert line.endswith("no checkpoint had been saved yet")


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
    # In a folder named for the run: its overrides, which TensorBoard shows as the run's name.
    (folder,) = {events.parent for events in (run_dir / "tensorboard").glob("*/events.out.*")}
    assert folder.name.startswith("data=text,data.path=_")


def test_short_real_run_learns_shakespeare(tmp_path, shared_data_dir):
    run_dir = tmp_path / "run"
    run(
        [
            f"paths.data_dir={shared_data_dir}",
            "model/size=tiny",
            "trainer.max_steps=300",
            "trainer.val_every_n_steps=150",
            "logger=csv",
            f"hydra.run.dir={run_dir}",
        ]
    )
    assert min(csv_metric(run_dir, "val/loss")) < 0.65 * math.log(65)


@pytest.mark.slow
def test_default_run_reaches_the_advertised_loss(tmp_path, shared_data_dir):
    """`python run.py` with no overrides: val loss <= 1.90 on tiny-shakespeare."""
    run_dir = tmp_path / "run"
    result = run([f"paths.data_dir={shared_data_dir}", f"hydra.run.dir={run_dir}"], timeout=1200)
    assert min(csv_metric(run_dir, "val/loss")) <= 1.90
    assert "--- sample at step 1000 ---" in result.stdout


def test_sweep_records_a_failed_job_and_goes_on(tmp_path, play_file):
    sweep_dir = tmp_path / "sweep"
    sweep = ["-m", "logger=csv", f"hydra.sweep.dir={sweep_dir}"]
    result = run(
        [*sweep, "data=text", f"data.path={play_file}", *TINY, "model.n_head=3,2"],
        check=False,
        full_error=False,
    )
    assert result.returncode == 1
    assert "job 0 failed: model.d_model=64 is not divisible by model.n_head=3" in result.stderr
    assert "sweep: 1 of 2 jobs finished" in result.stdout
    assert (sweep_dir / "1" / "checkpoints" / "best.ckpt").is_file()  # the next job ran
    with open(sweep_dir / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["job"], r["status"]) for r in rows] == [("0", "failed"), ("1", "finished")]
    assert rows[0]["error"].startswith("model.d_model=64 is not divisible")
    assert rows[1]["overrides"].endswith("model.n_head=2")
    assert float(rows[1]["best_val_loss"]) > 0 and int(rows[1]["num_params"]) > 0
    assert float(rows[1]["tokens_per_s"]) > 0 and float(rows[1]["wall_s"]) > 0
    assert float(rows[1]["test_loss"]) > 0 and int(rows[1]["tokens_seen"]) == 15 * 8 * 16
    record = json.loads((sweep_dir / "1" / "run.json").read_text())
    assert record["job_num"] == 1 and record["status"] == "finished"
    assert math.isclose(record["val_bpc"], record["best_val_loss"] / math.log(2))


def test_same_seed_same_losses_other_seed_other_losses(tmp_path, play_file):
    def losses(name: str, seed: int) -> list[float]:
        args = ["data=text", f"data.path={play_file}", *TINY, "trainer.max_steps=6", "logger=csv"]
        every_step = [
            "trainer.log_every_n_steps=1",
            "model.dropout=0.1",
            "test_after_training=false",
        ]
        run([*args, *every_step, f"seed={seed}", f"hydra.run.dir={tmp_path / name}"])
        return csv_metric(tmp_path / name, "train/loss")

    first = losses("first", seed=1)
    assert len(first) == 6
    assert losses("again", seed=1) == first  # bit for bit on CPU
    other = losses("other", seed=2)
    assert all(a != b for a, b in zip(first, other, strict=True))


@pytest.mark.slow
def test_ddp_on_two_cpu_processes_matches_one_process(tmp_path, shared_data_dir):
    """Same global batch (2 x 16, 1 x 32): one set of outputs, a val loss close to one process's."""
    common = [f"paths.data_dir={shared_data_dir}", *TINY, "trainer.max_steps=40"]
    common += ["trainer.val_every_n_steps=20", "trainer.limit_val_batches=8", "logger=csv"]
    ddp_dir, single_dir = tmp_path / "ddp", tmp_path / "single"
    result = run([*common, "trainer=ddp_cpu", "data.batch_size=16", f"hydra.run.dir={ddp_dir}"])
    run([*common, "data.batch_size=32", f"hydra.run.dir={single_dir}"])
    assert result.stdout.count("outputs:") == 1  # only rank zero reports
    assert sorted(p.name for p in (ddp_dir / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]
    ddp, single = (json.loads((d / "run.json").read_text()) for d in (ddp_dir, single_dir))
    assert ddp["status"] == "finished" and ddp["global_step"] == 40
    assert abs(ddp["best_val_loss"] - single["best_val_loss"]) < 0.05
    # Rank zero logged every validation once; the other rank wrote nothing of its own.
    assert len(csv_metric(ddp_dir, "val/loss")) == 2


def test_the_gpu_trainer_config_trains_under_cpu_autocast(tmp_path, play_file):
    """trainer=gpu as it is (bf16-mixed, auto = fused AdamW, clipping), on the CPU.

    (16-mixed with its GradScaler: tests/training/test_module.py; the CPU's Trainer would
    turn `trainer.precision=16-mixed` into bf16.)
    """
    run_dir = tmp_path / "run"
    gpu = ["trainer=gpu", "trainer.accelerator=cpu"]
    run(
        [
            "data=text",
            f"data.path={play_file}",
            *TINY,
            *gpu,
            "logger=csv",
            f"hydra.run.dir={run_dir}",
        ]
    )
    losses = csv_metric(run_dir, "train/loss")
    assert losses and all(math.isfinite(loss) for loss in losses)
    assert json.loads((run_dir / "run.json").read_text())["status"] == "finished"


@pytest.mark.parametrize("question", [["--help"], ["--cfg", "job"]])
def test_help_and_cfg_answer_without_importing_torch_lightning_or_wandb(question):
    """What a user asks before a run starts (--help, --cfg) loads Hydra alone: about a second."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", str(PROJECT_ROOT / "run.py"), *question],
        env=run_env(full_error=True),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "trainer" in result.stdout
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines()}
    assert "hydra" in imported
    assert not imported & {"torch", "lightning", "wandb"}
