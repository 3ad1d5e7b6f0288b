"""What a launch does to the run folder around the task: Hydra callbacks and the clean-up.

- `WritableOutputs`: a run or sweep folder that cannot be written fails in one line, up front.
  Hydra creates the folder before the task starts, so a read-only place would otherwise end in
  Hydra's traceback (or, for a resume, deep inside training).
- `discard_unused_folder`: a run that fails before training removes the folder it created.
- `SweepReport`: a sweep's summary.csv, and its failed jobs listed at the end.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from chargpt.runs.commands import COMPARE, command
from chargpt.runs.layout import CHECKPOINT_DIR, HYDRA_DIR, LAUNCH_FILES, SUMMARY_FILE
from chargpt.runs.record import write_sweep_summary

# The folders this launch is about to create (the run's folder and missing parents), deepest
# first: what a run that fails before training may remove again, and nothing else.
NEW_FOLDERS: list[Path] = []


def _missing_folders(folder: Path) -> list[Path]:
    missing = []
    folder = Path(os.path.abspath(folder))
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing


class WritableOutputs(Callback):
    """Probe the run folder (`-m`: the sweep folder) with a temporary file before Hydra writes."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        run_dir = Path(config.hydra.run.dir)
        _exit_unless_writable(run_dir, "hydra.run.dir")
        NEW_FOLDERS[:] = _missing_folders(run_dir)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        _exit_unless_writable(Path(config.hydra.sweep.dir), "hydra.sweep.dir")


def discard_unused_folder(run_dir: Path) -> None:
    """Remove a run folder this launch created, if it holds only what the launch wrote.

    Folders that existed before the launch (`NEW_FOLDERS` knows) stay.
    """
    run_dir = Path(os.path.abspath(run_dir))
    if run_dir not in NEW_FOLDERS or not run_dir.is_dir():
        return
    entries = list(run_dir.iterdir())
    hydra = run_dir / HYDRA_DIR
    hydra_only = not hydra.exists() or all(p.suffix == ".yaml" for p in hydra.iterdir())
    # run.log holds only this launch's messages: the folder is new.
    if not ({p.name for p in entries} <= LAUNCH_FILES and hydra_only):
        return
    shutil.rmtree(run_dir, ignore_errors=True)
    for parent in NEW_FOLDERS[NEW_FOLDERS.index(run_dir) + 1 :]:
        try:
            parent.rmdir()  # a date folder made for this run alone
        except OSError:
            break


def unwritable_reason(folder: Path) -> str | None:
    """Why files cannot be created in `folder` (or where it would be created), None if they can.

    A real write, not `os.access`: permissions do not bind root, a read-only mount binds all.
    """
    probes = [folder / CHECKPOINT_DIR, folder] if folder.exists() else []
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    for place in [*[p for p in probes if p.is_dir()], existing]:
        try:
            with tempfile.TemporaryFile(dir=place):
                pass
        except OSError as error:
            return f"{place}: {error.strerror or error}"
    return None


def _exit_unless_writable(folder: Path, key: str) -> None:
    reason = unwritable_reason(folder)
    if reason is not None:
        print(
            f"error: cannot write the run's outputs to {folder} ({reason}); "
            f"choose a writable place with {key}=FOLDER, or make it writable",
            file=sys.stderr,
        )
        sys.exit(1)


class SweepReport(Callback):
    """At the end of a sweep: rebuild its summary, list jobs that did not finish, exit non-zero.

    Each job refreshes the summary itself when it ends (`chargpt.train.job.run_job`).
    """

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        records = write_sweep_summary(sweep_dir)
        failed = [record for record in records if record.status != "finished"]
        print(
            f"\nsweep: {len(records) - len(failed)} of {len(records)} jobs finished; "
            f"summary: {sweep_dir / SUMMARY_FILE}; compare: {command(COMPARE)} {sweep_dir}"
        )
        if failed:
            for record in failed:
                print(
                    f"  job {record.job_num} {record.status}: {' '.join(record.overrides)}: "
                    f"{record.error or 'no outcome recorded (killed?)'}",
                    file=sys.stderr,
                )
            sys.exit(1)
