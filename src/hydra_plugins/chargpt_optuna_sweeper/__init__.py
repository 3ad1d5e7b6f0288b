"""Optuna search as a Hydra sweeper, on Optuna's ask-and-tell API: `hydra/sweeper=optuna`.

Why not the hydra-optuna-sweeper package: its release for Hydra 1.3 (1.3.0) requires optuna<3,
whose SQLite storage fails under SQLAlchemy 2, and its successor (1.4) needs Hydra 1.4. This
sweeper takes the same keys (sampler, direction, storage, study_name, n_trials, n_jobs, params)
and the same search-space syntax, so `conf/hparams_search/` files work with either:

    optimizer.lr: tag(log, interval(1e-4, 1e-2))   FloatDistribution(1e-4, 1e-2, log=True)
    model.dropout: interval(0.0, 0.3)              FloatDistribution(0.0, 0.3)
    model.n_layer: range(2, 9, 2)                  IntDistribution(2, 8, step=2)  (stop excluded)
    model.n_head: int(interval(2, 8))              IntDistribution(2, 8)
    model.norm_position: choice(pre, post)         CategoricalDistribution
    data.batch_size: 32                            a fixed override, the same in every trial

Each round asks Optuna for `n_jobs` trials, launches them as Hydra jobs with the configured
launcher (joblib runs them at once), and tells Optuna each job's return value (run.py returns the
best val loss). A failed job is a failed trial and the search goes on. With an RDB storage the
study outlives the sweep: the same command again adds `n_trials` trials to it.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, Transformer
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn, JobStatus
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

if TYPE_CHECKING:  # Hydra imports every plugin at start-up; only sweeps import Optuna
    import optuna
    from optuna.distributions import BaseDistribution

log = logging.getLogger(__name__)

RESULTS_FILE = "optimization_results.yaml"


class OptunaSweeper(Sweeper):
    """Hydra sweeper that searches `params` (plus sweep overrides) with an Optuna study."""

    def __init__(
        self,
        sampler: optuna.samplers.BaseSampler,
        direction: str,
        storage: str | None,
        study_name: str | None,
        n_trials: int,
        n_jobs: int,
        params: DictConfig | None,
    ) -> None:
        self.sampler = sampler
        self.direction = direction
        self.storage = storage
        self.study_name = study_name
        self.n_trials = n_trials
        self.n_jobs = n_jobs
        self.params = params or {}

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            config=config, hydra_context=hydra_context, task_function=task_function
        )

    def sweep(self, arguments: list[str]) -> list[JobReturn]:
        import optuna
        from optuna.trial import TrialState

        space, fixed = search_space([*(f"{k}={v}" for k, v in self.params.items()), *arguments])
        _make_sqlite_folder(self.storage)
        study = optuna.create_study(
            storage=self.storage,
            study_name=self.study_name,
            sampler=self.sampler,
            direction=self.direction,
            load_if_exists=True,
        )
        log.info(
            f"Optuna study {study.study_name!r} ({self.storage or 'in memory'}): "
            f"{len(study.trials)} earlier trials, {self.n_trials} to run"
        )
        returns: list[JobReturn] = []
        while len(returns) < self.n_trials:
            batch_size = min(self.n_jobs, self.n_trials - len(returns))
            trials = [study.ask(space) for _ in range(batch_size)]
            batch = [[*(f"{k}={v}" for k, v in trial.params.items()), *fixed] for trial in trials]
            try:
                self.validate_batch_is_legal(batch)
                results = self.launcher.launch(batch, initial_job_idx=len(returns))
            except BaseException:  # a config error or Ctrl+C: leave no trial running in the study
                for trial in trials:
                    study.tell(trial, state=TrialState.FAIL)
                raise
            for trial, result in zip(trials, results, strict=True):
                _tell(study, trial, result)
            returns.extend(results)
        _report_best(study, Path(self.config.hydra.sweep.dir) / RESULTS_FILE)
        return returns


def search_space(overrides: list[str]) -> tuple[dict[str, BaseDistribution], list[str]]:
    """Split overrides into Optuna distributions (the sweeps) and fixed overrides; the last
    override of a key wins, so the command line beats `params`."""
    parsed = {o.get_key_element(): o for o in OverridesParser.create().parse_overrides(overrides)}
    space = {key: _distribution(o) for key, o in parsed.items() if o.is_sweep_override()}
    fixed = [o.input_line for o in parsed.values() if not o.is_sweep_override()]
    return space, fixed


def _distribution(override: Override) -> BaseDistribution:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    sweep = override.value()
    if override.is_interval_sweep():
        log_scale = "log" in sweep.tags
        if isinstance(sweep.start, int) and isinstance(sweep.end, int):  # int(interval(a, b))
            return IntDistribution(sweep.start, sweep.end, log=log_scale)
        return FloatDistribution(sweep.start, sweep.end, log=log_scale)
    values = list(override.sweep_iterator(transformer=Transformer.encode))
    if override.is_range_sweep() and not sweep.shuffle and all(type(v) is int for v in values):
        return IntDistribution(min(values), max(values), step=abs(int(sweep.step)))
    return CategoricalDistribution(values)  # choice(...), and ranges of floats


def _make_sqlite_folder(storage: str | None) -> None:
    """SQLite creates the database file but not its folder (multirun/ may not exist yet)."""
    if storage and storage.startswith("sqlite:///"):
        Path(storage.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)


def _tell(study: optuna.Study, trial: optuna.Trial, result: JobReturn) -> None:
    """Record the job's value; a job that raised or returned NaN (a failed run) fails the trial."""
    from optuna.trial import TrialState

    if result.hydra_cfg is not None:
        trial.set_user_attr("run_dir", result.hydra_cfg.hydra.runtime.output_dir)
    value = float(result.return_value) if result.status == JobStatus.COMPLETED else math.nan
    if math.isfinite(value):
        study.tell(trial, value)
    else:
        log.warning(f"trial {trial.number} failed ({' '.join(result.overrides or [])})")
        study.tell(trial, state=TrialState.FAIL)


def _report_best(study: optuna.Study, results_file: Path) -> None:
    """Log the study's best trial so far (from this sweep or an earlier one) and save it."""
    from optuna.trial import TrialState

    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        log.warning("no trial of the study has finished")
        return
    best = study.best_trial
    overrides = " ".join(f"{k}={v}" for k, v in best.params.items())
    log.info(
        f"best of {len(study.trials)} trials: #{best.number}, value {best.value:.4f}: {overrides}"
    )
    results: dict[str, Any] = {
        "study_name": study.study_name,
        "best_trial": best.number,
        "best_value": best.value,
        "best_params": best.params,
        "best_run_dir": best.user_attrs.get("run_dir"),
    }
    OmegaConf.save(OmegaConf.create(results), results_file)
