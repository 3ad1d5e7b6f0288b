"""`python run.py ckpt_path=last|PATH`: resume a run in its own folder, with its own settings.

Hydra picks the run folder before the task starts, so the command line is completed first:
the run's original overrides (the new ones win), `hydra.run.dir` set to the run's folder, and
Hydra's record of the resumed launch kept beside the original one instead of over it.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from chargpt.errors import ChargptError

LAST = "last"
CHECKPOINT_DIR = "checkpoints"
LAST_CHECKPOINT = "last.ckpt"


class ResumeError(ChargptError):
    """A run to resume cannot be found or used."""


def resume_arguments(args: list[str], outputs_dir: Path = Path("outputs")) -> list[str]:
    """The command line `args`, completed to resume the run named by its `ckpt_path=`."""
    ckpt_value = _value_of(args, "ckpt_path")
    if ckpt_value in (None, "null"):
        return args
    if any(arg in ("-m", "--multirun") for arg in args):
        raise ResumeError("ckpt_path cannot be used with -m: resume sweep jobs one at a time")
    checkpoint = _checkpoint_path(ckpt_value, _value_of(args, "hydra.run.dir"), outputs_dir)
    run_dir = _run_dir_of(checkpoint)
    if run_dir is None:  # a checkpoint from elsewhere: continue it in a new run folder
        return _replace(args, "ckpt_path", str(checkpoint))
    stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S.%f")
    completed = [
        *_original_overrides(run_dir),
        *args,
        f"hydra.run.dir={run_dir}",
        f"hydra.output_subdir=.hydra/resumed-{stamp}",
    ]
    return _replace(_latest_per_key(completed), "ckpt_path", str(checkpoint))


def _checkpoint_path(value: str, run_dir: str | None, outputs_dir: Path) -> Path:
    if value != LAST:
        path = Path(value)
        if not path.is_file():
            raise ResumeError(f"ckpt_path={value}: no such checkpoint file")
        return path
    if run_dir is not None:
        path = Path(run_dir) / CHECKPOINT_DIR / LAST_CHECKPOINT
        if not path.is_file():
            raise ResumeError(f"ckpt_path=last: {path} does not exist")
        return path
    # Run folders are named by date and time, so the newest sorts last.
    candidates = sorted(outputs_dir.glob(f"*/*/{CHECKPOINT_DIR}/{LAST_CHECKPOINT}"))
    if not candidates:
        raise ResumeError(
            f"ckpt_path=last: no run under {outputs_dir}/ has {CHECKPOINT_DIR}/{LAST_CHECKPOINT}; "
            "name the run with hydra.run.dir=FOLDER or give ckpt_path=PATH"
        )
    return candidates[-1]


def _run_dir_of(checkpoint: Path) -> Path | None:
    """The run folder that wrote `checkpoint`, if it is one (it has Hydra's record)."""
    folder = checkpoint.resolve().parent
    if folder.name == CHECKPOINT_DIR and (folder.parent / ".hydra" / "overrides.yaml").is_file():
        return checkpoint.parent.parent
    return None


def _original_overrides(run_dir: Path) -> list[str]:
    return [str(item) for item in OmegaConf.load(run_dir / ".hydra" / "overrides.yaml")]


def _value_of(args: list[str], key: str) -> str | None:
    for arg in reversed(args):
        if arg.startswith(f"{key}="):
            return arg.partition("=")[2]
    return None


def _replace(args: list[str], key: str, value: str) -> list[str]:
    return [f"{key}={value}" if arg.startswith(f"{key}=") else arg for arg in args]


def _latest_per_key(args: list[str]) -> list[str]:
    """Drop overrides that a later one of the same key replaces (Hydra rejects duplicates)."""
    overrides = [arg for arg in args if "=" in arg and not arg.startswith("-")]
    flags = [arg for arg in args if arg not in overrides]
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except Exception:  # a malformed override: leave it for Hydra to report
        return args
    latest = {override.key_or_group: text for override, text in zip(parsed, overrides, strict=True)}
    return [*flags, *latest.values()]
