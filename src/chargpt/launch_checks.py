"""Hydra callback: a run or sweep folder that cannot be written fails in one line, up front.

Hydra creates the folder before the task starts, so a read-only place would otherwise end in
Hydra's traceback (or, for a resume, deep inside training).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from chargpt.resume import CHECKPOINT_DIR

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
