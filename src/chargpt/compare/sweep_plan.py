"""The jobs a sweep will run, from its `multirun.yaml`: the ones without a folder are still to come.

Hydra's basic sweeper runs the cartesian product of the comma-separated overrides (and of its
`hydra.sweeper.params`, where experiments keep their grid), numbering jobs in that order;
`expand_sweep` lists them the same way. Other sweepers (Optuna) choose jobs as they go, so
nothing is listed.
"""

from __future__ import annotations

from pathlib import Path

from hydra.errors import HydraException
from omegaconf import OmegaConf

from chargpt.runs.layout import SWEEP_FILE
from chargpt.runs.read import NOT_STARTED, Run, override_key
from chargpt.runs.sweep import expand_sweep

# The basic sweeper's `_target_`, as multirun.yaml names it (a name only: nothing is imported).
BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"
JOB_SUBDIR = "${hydra.job.num}"


def planned_jobs(sweep_dir: Path) -> list[list[str]]:
    """Each job's overrides, in job order; [] where the plan cannot be known."""
    path = sweep_dir / SWEEP_FILE
    if not path.is_file():
        return []
    hydra = OmegaConf.to_container(OmegaConf.load(path), resolve=False)["hydra"]
    if hydra["sweeper"].get("_target_") != BASIC_SWEEPER or hydra["sweep"]["subdir"] != JOB_SUBDIR:
        return []
    params = hydra["sweeper"].get("params") or {}
    arguments = [f"{key}={value}" for key, value in params.items()] + hydra["overrides"]["task"]
    try:
        return expand_sweep(arguments)
    except (HydraException, ValueError):  # `glob(…)` needs Hydra's config loader: plan unknown
        return []


def pending_jobs(sweep_dir: Path) -> list[Run]:
    """The planned jobs of a sweep that have no folder yet, with the settings they will run."""
    pending = []
    for job_num, overrides in enumerate(planned_jobs(sweep_dir)):
        job_dir = sweep_dir / str(job_num)
        if job_dir.exists():
            continue
        values = dict(override.split("=", 1) for override in overrides)
        pending.append(
            Run(
                path=job_dir,
                status=NOT_STARTED,
                settings={override_key(key): value for key, value in values.items()},
                partial=True,
                overridden=[override_key(key) for key in values],
            )
        )
    return pending
