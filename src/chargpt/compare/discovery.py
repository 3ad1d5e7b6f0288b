"""Find the runs under the paths given: run folders, sweeps, folders of either, wandb folders.

Folders that hold runs are searched a few levels deep, so `multirun/` or `outputs/` work too;
a run folder is not searched further (its `wandb/` belongs to it). A sweep's jobs that have not
started yet are listed as well, so a half-finished sweep shows what is missing.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from chargpt.compare.sweep_plan import pending_jobs
from chargpt.compare.wandb_runs import find_wandb_runs, is_wandb_run, load_wandb_run
from chargpt.errors import ChargptError
from chargpt.runs.layout import RUN_SUBFOLDERS, is_run_dir
from chargpt.runs.read import NOT_STARTED, Run, load_run_dir

SEARCH_DEPTH = 3  # multirun/<date>/<time>/<job>
# Folders that never hold runs of their own.
NOT_RUNS = RUN_SUBFOLDERS | {"__pycache__"}
EXPECTED = "expected a run folder, a sweep (multirun) folder or a wandb folder"


def find_runs(paths: Sequence[str | os.PathLike]) -> list[Run]:
    """Every run under the paths, each once, labelled by its path below their common folder."""
    runs: dict[Path, Run] = {}
    for path in map(Path, paths):
        found = runs_at(path)
        if not found:
            raise ChargptError(
                f"{path}: no runs found; expected a run folder (with .hydra/, run.json or "
                "csv/metrics.csv), a sweep (multirun) folder of them, or a wandb folder"
            )
        if all(run.status == NOT_STARTED for run in found):
            raise ChargptError(
                f"{path}: no runs yet; the sweep's {len(found)} jobs have not started"
            )
        runs.update((run.path.resolve(), run) for run in found)
    found = list(runs.values())
    _label(found)
    return found


def holds_runs(path: Path) -> bool:
    """A folder of several runs, as opposed to one run."""
    return path.is_dir() and not is_run_dir(path) and not is_wandb_run(path)


def runs_at(path: Path) -> list[Run]:
    if not path.exists():
        raise ChargptError(f"{path}: no such folder; {EXPECTED}")
    if not path.is_dir():
        raise ChargptError(f"{path}: not a folder; {EXPECTED}")
    if is_run_dir(path):
        return [load_run_dir(path)]
    if is_wandb_run(path):
        return [load_wandb_run(path)]
    run_dirs = sorted(_run_dirs_under(path, SEARCH_DEPTH), key=_natural_key)
    if not run_dirs:
        wandb_runs = [load_wandb_run(run_path) for run_path in find_wandb_runs(path)]
        return wandb_runs or pending_jobs(path)
    runs = [load_run_dir(run_dir) for run_dir in run_dirs]
    for sweep_dir in sorted({run_dir.parent for run_dir in run_dirs}, key=_natural_key):
        runs += pending_jobs(sweep_dir)
    return runs


def _run_dirs_under(folder: Path, depth: int) -> Iterator[Path]:
    if depth == 0:
        return
    for child in folder.iterdir():
        if not child.is_dir() or child.name.startswith(".") or child.name in NOT_RUNS:
            continue
        if is_run_dir(child):
            yield child
        else:
            yield from _run_dirs_under(child, depth - 1)


def _natural_key(path: Path) -> list[tuple[int, int | str]]:
    """Job 10 after job 9: numbers compare as numbers."""
    return [(0, int(part)) if part.isdigit() else (1, part) for part in path.parts]


def _label(runs: list[Run]) -> None:
    """Name each run by its path below the runs' common folder: `3` for job 3 of one sweep."""
    paths = [run.path.resolve() for run in runs]
    common = Path(os.path.commonpath(paths)) if len(paths) > 1 else paths[0].parent
    for run, path in zip(runs, paths, strict=True):
        run.label = path.relative_to(common).as_posix() if path != common else path.name
