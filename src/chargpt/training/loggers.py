"""Loggers: wandb that goes offline without credentials; CSV metrics that survive a resume;
TensorBoard without placeholder metrics. None of them gets Lightning's `epoch` curve: runs here
are counted in steps, and their one endless epoch is always 0.

And what a run does with all of its loggers, in one place: log the run's settings, text samples
and outcome, close them at the end (also after a failure), and say where each one wrote. wandb
itself is imported only when a WandbLogger is present (its import takes seconds).
"""

from __future__ import annotations

import csv
import io
import netrc
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.pytorch.loggers import CSVLogger, Logger, TensorBoardLogger, WandbLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.utilities.rank_zero import rank_zero_only

from chargpt.errors import SettingError
from chargpt.runs.files import write_atomically
from chargpt.runs.variant import folder_label

WANDB_MODES = ("auto", "online", "offline", "disabled")
# Lightning adds it to every metric row logged without a step of its own.
EPOCH_KEY = "epoch"
SAMPLES_KEY = "samples"
EVENTS_PREFIX = "events.out.tfevents."  # TensorBoard's event files
# The figures TensorBoard's HParams tab shows beside each run's swept settings.
BEST_VAL_LOSS_KEY = "hparams/best_val_loss"
TEST_LOSS_KEY = "hparams/test_loss"


# TensorBoard's Custom Scalars tab: the losses first, then the learning rate and throughput.
CUSTOM_SCALARS_LAYOUT = {
    "loss": {
        "val/loss": ["Multiline", [r"^val/loss$"]],
        "train/loss": ["Multiline", [r"^train/loss$"]],
    },
    "learning rate": {"lr": ["Multiline", [r"^lr(/.*)?$"]]},
    "throughput": {"tokens/s": ["Multiline", [r"^perf/tokens_per_s$"]]},
}


def without_epoch(metrics: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in metrics.items() if key != EPOCH_KEY}


LOGGER_KINDS = {CSVLogger: "csv", TensorBoardLogger: "tensorboard", WandbLogger: "wandb"}


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
    quiet: bool = True,
    **wandb_init_kwargs: Any,
) -> WandbLogger:
    """Build a `WandbLogger`; extra keyword arguments go to `wandb.init`.

    `quiet`: no banner when the run starts and no history block when it ends. That takes
    wandb's `silent` setting (its `quiet` leaves three lines of banner), which also sends wandb's
    own warnings to its debug.log in the run's wandb folder only; its errors still raise, the
    run's files (its console capture included) are written all the same, and the end-of-run
    summary names the run's folder, and its URL when it is online.
    """
    if not isinstance(quiet, bool):
        raise SettingError(f"logger.wandb.quiet={quiet!r}: must be true or false")
    import wandb

    Path(save_dir).mkdir(parents=True, exist_ok=True)
    settings = wandb_init_kwargs.pop("settings", None) or {}
    if not isinstance(settings, wandb.Settings):
        settings = wandb.Settings(**{"silent": quiet, **dict(settings)})
    return RunWandbLogger(
        save_dir=save_dir,
        project=project,
        name=name,
        group=group,
        tags=list(tags),
        mode=resolve_wandb_mode(mode),
        settings=settings,
        **wandb_init_kwargs,
    )


class RunWandbLogger(WandbLogger):
    """`WandbLogger` without Lightning's `epoch` metric, nor its `anonymous` init argument:
    Lightning always passes that argument (None unless set), and wandb warns that it has no
    effect."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self._wandb_init.get("anonymous") is None:
            self._wandb_init.pop("anonymous", None)

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        super().log_metrics(without_epoch(metrics), step)


class RunTensorBoardLogger(TensorBoardLogger):
    """`TensorBoardLogger` without `epoch` and without Lightning's placeholder `hp_metric = -1`.

    Its HParams tab gets what `log_outcome` gives it at the end of a run: the run's swept
    settings with its best validation loss (and test loss).
    """

    def __init__(self, *args: Any, default_hp_metric: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, default_hp_metric=default_hp_metric, **kwargs)
        self._layout_written = False

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        if not self._layout_written:
            # TensorBoard's scalar tabs sort tags alphabetically (lr before train/ and val/);
            # its Custom Scalars tab shows this layout's order.
            self.experiment.add_custom_scalars(CUSTOM_SCALARS_LAYOUT)
            self._layout_written = True
        super().log_metrics(without_epoch(metrics), step)


def tensorboard_version(folder: Path, label: str) -> str:
    """The TensorBoard run folder under `folder` for a run named `label`: `label` as a folder
    name, which TensorBoard shows as the run's name; "" (the events directly in `folder`) for a
    resumed run that began before runs were named, so that it goes on in one TensorBoard run."""
    if folder.is_dir() and any(path.name.startswith(EVENTS_PREFIX) for path in folder.iterdir()):
        return ""
    return folder_label(label)


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
    """Lightning's CSV writer deletes an existing metrics.csv; this one appends to it.

    Lightning has no setting for appending: the deletion happens in its private hook
    `_check_log_dir_exists`, called when the writer is made, so this overrides that hook.
    """

    def _check_log_dir_exists(self) -> None:
        if self._fs.isfile(self.metrics_file_path):
            with self._fs.open(self.metrics_file_path, "r", newline="") as file:
                self.metrics_keys = sorted(csv.DictReader(file).fieldnames or [])


class ResumableCSVLogger(CSVLogger):
    """`CSVLogger` whose `metrics.csv` keeps the rows of earlier launches of a resumed run.

    A launch that resumes from step N forgets the earlier rows at step N or later: a run killed
    after its last checkpoint, or resumed from an older one, logged steps that are trained again.
    `experiment` is CSVLogger's own, with the appending writer: CSVLogger keeps its writer in
    `_experiment` and offers no setting for another writer.
    """

    _launch_logged = False

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        if not self._launch_logged and step is not None:
            forget_rows_from(Path(self.log_dir) / ExperimentWriter.NAME_METRICS_FILE, step)
        self._launch_logged = True
        super().log_metrics(without_epoch(metrics), step)

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _AppendingWriter(log_dir=self.log_dir)
        return self._experiment


def log_text_samples(loggers: Iterable[Logger], rows: Sequence[Sequence[Any]]) -> None:
    """Log the samples so far, `[step, text]` rows with the newest last, where text is shown.

    wandb gets every row as a table in the run's summary, replaced at each validation (its
    tables cannot be appended to). A table in the history would add pseudo-metrics
    (`samples.nrows`, `samples.ncols`) to every chart view. TensorBoard gets the newest text at
    its step.
    """
    step, text = rows[-1]
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            import wandb

            table = wandb.Table(columns=["step", "text"], data=[list(row) for row in rows])
            logger.experiment.summary[SAMPLES_KEY] = table
        elif isinstance(logger, TensorBoardLogger):
            logger.experiment.add_text(SAMPLES_KEY, text, step)


def log_outcome(
    loggers: Iterable[Logger],
    settings: Mapping[str, Any],
    best_val_loss: float | None,
    test_loss: float | None,
    step: int,
) -> None:
    """The run's result beside its swept `settings`, where a logger has a place for that:
    TensorBoard's HParams tab (written once, at the end, so it holds the best loss)."""
    figures = {BEST_VAL_LOSS_KEY: best_val_loss, TEST_LOSS_KEY: test_loss}
    figures = {key: value for key, value in figures.items() if value is not None}
    for logger in loggers:
        if isinstance(logger, RunTensorBoardLogger) and figures:
            logger.log_hyperparams(dict(settings), metrics=figures, step=step)


def close_loggers(loggers: Iterable[Logger], exit_code: int) -> None:
    """Flush and finalize every logger and finish the wandb run (failed if exit_code != 0).

    Lightning finalizes loggers only when a stage succeeds; an interrupted run's last metrics
    would stay unwritten. A finished wandb run lets the next sweep job start a clean one.
    """
    loggers = list(loggers)
    for logger in loggers:
        logger.finalize("success" if exit_code == 0 else "failed")
    if any(isinstance(logger, WandbLogger) for logger in loggers):
        import wandb

        if wandb.run is not None:  # None: the logger never started its run
            wandb.finish(exit_code=exit_code)


def logger_kind(logger: Logger) -> str:
    """csv, tensorboard or wandb; another logger's class name."""
    kinds = LOGGER_KINDS.items()
    return next((kind for cls, kind in kinds if isinstance(logger, cls)), type(logger).__name__)


def wandb_run_id(loggers: Iterable[Logger]) -> str | None:
    """The wandb run's id, starting the run if it has not started (None without wandb)."""
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            return logger.experiment.id
    return None


def describe_loggers(loggers: Iterable[Logger]) -> list[str]:
    """A line per logger for the end-of-run report: what it is, and the folder it wrote."""
    lines = []
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            run = logger.experiment
            online = not getattr(run, "offline", True) and not getattr(run, "disabled", False)
            hint = run.url if online else "browse: wandb leet; upload: wandb sync"
            where = f"{_wandb_run_dir(logger)}  ({hint})"
            lines.append(f"{'wandb run:':<13} {where}")
        elif logger.log_dir:
            lines.append(f"{logger_kind(logger) + ':':<13} {logger.log_dir}")
    return lines


def _wandb_run_dir(logger: WandbLogger) -> Path:
    """The run's own folder (wandb/offline-run-…; `dir` is its files/ folder).

    Training starts the run before it fits (`wandb_run_id`), so `experiment` returns that run,
    finished or not, rather than starting one.
    """
    return Path(logger.experiment.dir).parent
