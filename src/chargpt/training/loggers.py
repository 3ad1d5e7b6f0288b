"""Loggers: wandb that goes offline without credentials; CSV metrics that survive a resume."""

from __future__ import annotations

import csv
import io
import netrc
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.pytorch.loggers import CSVLogger, WandbLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.utilities.rank_zero import rank_zero_only

from chargpt.errors import SettingError
from chargpt.runs.files import write_atomically

WANDB_MODES = ("auto", "online", "offline", "disabled")


def has_wandb_credentials() -> bool:
    """An API key in the environment, or the netrc login that `wandb login` writes."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    netrc_file = os.environ.get("NETRC") or Path.home() / ".netrc"
    try:
        return netrc.netrc(netrc_file).authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def resolve_wandb_mode(mode: str) -> str:
    """`auto` follows WANDB_MODE if set, else goes online only with credentials."""
    if mode not in WANDB_MODES:
        raise SettingError(f"logger.wandb.mode={mode!r}: must be one of {', '.join(WANDB_MODES)}")
    if mode != "auto":
        return mode
    env_mode = os.environ.get("WANDB_MODE")
    if env_mode:
        return "offline" if env_mode == "dryrun" else env_mode
    return "online" if has_wandb_credentials() else "offline"


def wandb_logger(
    save_dir: str,
    project: str = "chargpt",
    name: str | None = None,
    group: str | None = None,
    tags: Sequence[str] = (),
    mode: str = "auto",
    **wandb_init_kwargs: Any,
) -> WandbLogger:
    """Build a `WandbLogger`; extra keyword arguments go to `wandb.init`."""
    Path(save_dir).mkdir(parents=True, exist_ok=True)
    return WandbLogger(
        save_dir=save_dir,
        project=project,
        name=name,
        group=group,
        tags=list(tags),
        mode=resolve_wandb_mode(mode),
        **wandb_init_kwargs,
    )


def forget_rows_from(metrics_file: Path, step: int) -> None:
    """Drop the rows of a metrics.csv logged at `step` or later (rewritten atomically)."""
    if not metrics_file.is_file():
        return
    with metrics_file.open(newline="", encoding="utf-8") as file:
        reader = csv.DictReader(file)
        rows = list(reader)
        fieldnames = reader.fieldnames or []
    kept = [row for row in rows if not row.get("step") or int(float(row["step"])) < step]
    if len(kept) == len(rows):
        return
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=fieldnames)  # \r\n rows, as Lightning writes them
    writer.writeheader()
    writer.writerows(kept)
    write_atomically(metrics_file, text.getvalue())


class _AppendingWriter(ExperimentWriter):
    """Lightning's CSV writer deletes an existing metrics.csv; this one appends to it."""

    def _check_log_dir_exists(self) -> None:
        if self._fs.isfile(self.metrics_file_path):
            with self._fs.open(self.metrics_file_path, "r", newline="") as file:
                self.metrics_keys = sorted(csv.DictReader(file).fieldnames or [])


class ResumableCSVLogger(CSVLogger):
    """`CSVLogger` whose `metrics.csv` keeps the rows of earlier launches of a resumed run.

    A launch that resumes from step N forgets the earlier rows at step N or later: a run killed
    after its last checkpoint, or resumed from an older one, logged steps that are trained again.
    """

    _launch_logged = False

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        if not self._launch_logged and step is not None:
            forget_rows_from(Path(self.log_dir) / ExperimentWriter.NAME_METRICS_FILE, step)
        self._launch_logged = True
        super().log_metrics(metrics, step)

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _AppendingWriter(log_dir=self.log_dir)
        return self._experiment
