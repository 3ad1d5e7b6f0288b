"""Launchers and sweepers: joblib runs jobs at once, Optuna studies resume, SLURM composes."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import optuna
import pytest
from helpers import TINY, run, wandb_summary
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from hydra_plugins.chargpt_optuna_sweeper import OptunaSweeper, search_space

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


def compose_with_hydra(overrides: list[str]) -> DictConfig:
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("train", overrides=overrides, return_hydra_config=True)


def run_record(run_dir: Path) -> dict:
    return json.loads((run_dir / "run.json").read_text())


def study_trials(storage: str, study_name: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=study_name, storage=storage).trials


def test_search_space_reads_hydra_sweep_syntax():
    space, fixed = search_space(
        [
            "optimizer.lr=tag(log, interval(1e-4, 1e-2))",
            "model.dropout=interval(0.0, 0.3)",
            "model.n_layer=range(2, 9, 2)",
            "model.n_head=int(interval(2, 8))",
            "model.norm_position=choice(pre, post)",
            "data.batch_size=16",
            "data.batch_size=32",  # the command line comes after `params` and wins
        ]
    )
    assert space == {
        "optimizer.lr": FloatDistribution(1e-4, 1e-2, log=True),
        "model.dropout": FloatDistribution(0.0, 0.3),
        "model.n_layer": IntDistribution(2, 8, step=2),  # Hydra's stop is excluded
        "model.n_head": IntDistribution(2, 8),
        "model.norm_position": CategoricalDistribution(["pre", "post"]),
    }
    assert fixed == ["data.batch_size=32"]


def test_hparams_search_composes_an_optuna_sweeper_with_sqlite_storage():
    cfg = compose_with_hydra(["hparams_search=optuna"])
    sweeper = instantiate(cfg.hydra.sweeper)
    # Hydra loads its plugins itself, so the class object differs from the one imported here.
    assert type(sweeper).__qualname__ == OptunaSweeper.__qualname__
    assert isinstance(sweeper.sampler, optuna.samplers.TPESampler)
    assert sweeper.direction == "minimize"
    assert sweeper.storage.startswith("sqlite:///")
    space, _ = search_space([f"{k}={v}" for k, v in sweeper.params.items()])
    assert space["optimizer.lr"] == FloatDistribution(3e-4, 1e-2, log=True)


def test_slurm_launcher_composes_with_submitit_settings():
    cfg = compose_with_hydra(["hydra/launcher=slurm", "hydra.launcher.partition=gpu"])
    launcher = instantiate(cfg.hydra.launcher)
    assert type(launcher).__name__ == "SlurmLauncher"
    assert launcher.params["partition"] == "gpu"
    assert launcher.params["gpus_per_node"] == 1
    assert launcher.params["timeout_min"] == 120
    assert launcher.params["submitit_folder"].endswith("/.submitit/%j")


@pytest.mark.slow  # three or more trainings: about a minute on a busy 2-core CPU
def test_joblib_runs_two_jobs_at_once_without_sharing_files(tmp_path, play_file):
    sweep_dir = tmp_path / "sweep"
    run(
        [
            "-m",
            "data=text",
            f"data.path={play_file}",
            *TINY,
            "test_after_training=false",
            "model.norm_position=pre,post",
            "hydra/launcher=joblib",
            "hydra.launcher.n_jobs=2",
            f"hydra.sweep.dir={sweep_dir}",
        ]
    )
    jobs = [sweep_dir / "0", sweep_dir / "1"]
    records = [run_record(job) for job in jobs]
    assert [r["status"] for r in records] == ["finished", "finished"]
    start = [datetime.fromisoformat(r["started"]) for r in records]
    end = [datetime.fromisoformat(r["ended"]) for r in records]
    assert start[0] < end[1] and start[1] < end[0], "the two jobs did not run at the same time"
    for job in jobs:
        assert (job / "checkpoints" / "best.ckpt").is_file()
        assert (job / "checkpoints" / "last.ckpt").is_file()
    summaries = [wandb_summary(job) for job in jobs]
    assert [s["config"]["model"]["norm_position"] for s in summaries] == ["pre", "post"]
    assert len({s["config"]["paths"]["output_dir"] for s in summaries}) == 2


def optuna_sweep(sweep_dir: Path, storage: str, play_file: Path, *extra: str):
    return run(
        [
            "-m",
            "hparams_search=optuna",
            "data=text",
            f"data.path={play_file}",
            *TINY,
            "trainer.max_steps=5",
            "trainer.val_every_n_steps=5",
            "test_after_training=false",
            "logger=csv",
            "hydra.sweeper.study_name=test",
            f"hydra.sweeper.storage={storage}",
            f"hydra.sweep.dir={sweep_dir}",
            *extra,
        ],
        check=False,
    )


@pytest.mark.slow  # three or more trainings: about a minute on a busy 2-core CPU
def test_optuna_study_runs_and_a_second_sweep_resumes_it(tmp_path, play_file):
    storage = f"sqlite:///{tmp_path / 'studies' / 'optuna.db'}"
    first = optuna_sweep(tmp_path / "first", storage, play_file, "hydra.sweeper.n_trials=2")
    assert first.returncode == 0, first.stderr[-3000:]
    second = optuna_sweep(tmp_path / "second", storage, play_file, "hydra.sweeper.n_trials=1")
    assert second.returncode == 0, second.stderr[-3000:]

    trials = study_trials(storage, "test")
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
    run_dirs = [Path(t.user_attrs["run_dir"]) for t in trials]
    assert run_dirs == [
        tmp_path / "first" / "0",
        tmp_path / "first" / "1",
        tmp_path / "second" / "0",
    ]
    for trial, run_dir in zip(trials, run_dirs, strict=True):
        assert trial.value == pytest.approx(run_record(run_dir)["best_val_loss"], abs=1e-4)
        assert f"optimizer.lr={trial.params['optimizer.lr']}" in run_record(run_dir)["overrides"]
    results = OmegaConf.load(tmp_path / "second" / "optimization_results.yaml")
    assert results.best_value == min(t.value for t in trials)  # over the whole study


def test_a_failed_trial_is_recorded_and_the_search_goes_on(tmp_path, play_file):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    # d_model=64 (tiny) is not divisible by 3: every trial fails before training starts.
    result = optuna_sweep(
        tmp_path / "sweep", storage, play_file, "hydra.sweeper.n_trials=2", "model.n_head=choice(3)"
    )
    assert result.returncode != 0  # the sweep reports its failed jobs
    assert [t.state for t in study_trials(storage, "test")] == [TrialState.FAIL] * 2
    assert "no trial of the study has finished" in result.stdout + result.stderr


def test_a_config_error_stops_the_search_and_leaves_no_trial_running(tmp_path, play_file):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    result = optuna_sweep(tmp_path / "sweep", storage, play_file, "model.n_layerz=choice(1, 2)")
    assert result.returncode != 0
    assert "n_layerz" in result.stderr
    assert [t.state for t in study_trials(storage, "test")] == [TrialState.FAIL]
