"""Every file name in a run folder and a sweep folder: the one place that spells them.

    RUN/                         a run: outputs/<date>/<time>/, or a sweep's job folder
      .hydra/                    Hydra's record: config.yaml, hydra.yaml, overrides.yaml
      .hydra/resumed-<time>/     the same record for each launch that resumed the run
      run.json                   the run's identity and results (`chargpt.runs.record`)
      run.log                    the console log
      .lock                      held while a process trains here
      checkpoints/best.ckpt      the best validation loss so far
      checkpoints/last.ckpt      the latest step: what `ckpt_path=last` resumes
      csv/metrics.csv            every logged metric; csv/hparams.yaml the run config
      tensorboard/, wandb/       the other loggers' files, when they are on
    SWEEP/                       multirun/<date>/<time>/
      multirun.yaml              Hydra's record of the sweep
      summary.csv                one row per job, rebuilt as each job ends
      0/, 1/, ...                the jobs' run folders

The loggers' and checkpoints' folders are set in conf/ (`callbacks.model_checkpoint.dirpath`,
`logger.csv.name`, ...); a test checks that they agree with the names here.
"""

from __future__ import annotations

from pathlib import Path

HYDRA_DIR = ".hydra"
RESUMED_PREFIX = "resumed-"  # .hydra/resumed-<time>/: the record of a launch that resumed
CONFIG_FILE = Path(HYDRA_DIR) / "config.yaml"
HYDRA_FILE = Path(HYDRA_DIR) / "hydra.yaml"
OVERRIDES_FILE = Path(HYDRA_DIR) / "overrides.yaml"
RUN_FILE = "run.json"
LOG_FILE = "run.log"
LOCK_FILE = ".lock"
CHECKPOINT_DIR = "checkpoints"
BEST_CHECKPOINT = "best.ckpt"
LAST_CHECKPOINT = "last.ckpt"
CSV_DIR = "csv"
METRICS_FILE = Path(CSV_DIR) / "metrics.csv"
HPARAMS_FILE = Path(CSV_DIR) / "hparams.yaml"
TENSORBOARD_DIR = "tensorboard"
WANDB_DIR = "wandb"

SWEEP_FILE = "multirun.yaml"
SUMMARY_FILE = "summary.csv"

# What Hydra writes into a run folder before the task starts, and the lock: nothing trained.
LAUNCH_FILES = frozenset({HYDRA_DIR, LOG_FILE, LOCK_FILE})
# Folders of a run that never hold runs of their own.
RUN_SUBFOLDERS = frozenset({CHECKPOINT_DIR, CSV_DIR, TENSORBOARD_DIR, WANDB_DIR})
# Any of these marks a folder as a run folder (run.json may be missing if it was killed early).
RUN_MARKERS = (HYDRA_DIR, RUN_FILE, str(METRICS_FILE))


def last_checkpoint(run_dir: str | Path) -> Path:
    """The checkpoint `ckpt_path=last` resumes from in `run_dir`."""
    return Path(run_dir) / CHECKPOINT_DIR / LAST_CHECKPOINT


def is_run_dir(path: Path) -> bool:
    return any((path / marker).exists() for marker in RUN_MARKERS)
