"""`python run.py ckpt_path=last|PATH`: resume a run in its own folder, with its own settings.

Hydra picks the run folder before the task starts, so the command line is completed first:
the run's original overrides (the new ones win), `hydra.run.dir` set to the run's folder, and
Hydra's record of the resumed launch kept beside the original one instead of over it.

A run folder is untrusted input, like a checkpoint: someone else may have written it. The
overrides replayed from it may only choose the project's own config options and set values of
keys the project's config has. They never name code (`_target_`), add or delete config nodes,
change Hydra's settings, or move where the run writes; and the composed config of a resumed run
is checked to instantiate only targets that the project's own `conf/` and `experiments/` name.
A folder's override of a key that has moved since (`chargpt.runs.renamed`) is replayed under
its new key; on the command line an old key is refused, naming the new one.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from omegaconf import DictConfig, OmegaConf

from chargpt.errors import ChargptError, one_line
from chargpt.runs import renamed
from chargpt.runs.compose import CONF_DIR
from chargpt.runs.layout import (
    CHECKPOINT_DIR,
    HYDRA_DIR,
    LAST_CHECKPOINT,
    OVERRIDES_FILE,
    RESUMED_PREFIX,
    WANDB_DIR,
)

LAST = "last"
EXPERIMENTS_DIR = CONF_DIR.parent / "experiments"
TARGET = "_target_"
# Keys that decide where a run writes: on resume, the run's own folder decides that.
# (File names inside the folder, such as a logger's name, are checked on the composed config.)
WRITE_LOCATION = re.compile(
    r"^(paths\.output_dir|trainer\.default_root_dir|.*\.(dirpath|save_dir|dir|log_dir|root_dir))$"
)


class ResumeError(ChargptError):
    """A run to resume cannot be found or used."""


def resume_arguments(args: list[str], outputs_dir: Path = Path("outputs")) -> list[str]:
    """The command line `args`, completed to resume the run named by its `ckpt_path=`.

    Any command line, resuming or not, is refused here if it sets a key that has moved.
    """
    renamed.check_overrides(args)
    ckpt_value = _value_of(args, "ckpt_path")
    if ckpt_value in (None, "null"):
        return args
    if any(arg in ("-m", "--multirun") for arg in args):
        raise ResumeError("ckpt_path cannot be used with -m: resume sweep jobs one at a time")
    checkpoint = _checkpoint_path(ckpt_value, _value_of(args, "hydra.run.dir"), outputs_dir)
    run_dir = _run_dir_of(checkpoint)
    if run_dir is None:  # a checkpoint from elsewhere: continue it in a new run folder
        return _replace(args, "ckpt_path", str(checkpoint))
    _check_links_stay_inside(run_dir)
    original = _original_overrides(run_dir)
    # Checked as the folder holds them, so a refusal quotes the file; then under today's keys.
    replaced = _keys_of(args)  # the command line's keys, and the old names of those that moved
    replaced |= {old for old, (new, _) in renamed.RENAMED.items() if new in replaced}
    _check_replayable(original, run_dir / OVERRIDES_FILE, replaced=replaced)
    replayed = renamed.translate_overrides(original)
    completed = [*replayed, *args, f"hydra.run.dir={run_dir}"]
    # Lightning's DDP relaunches run.py for its other processes with an output_subdir of its own.
    if _value_of(args, "hydra.output_subdir") is None:
        stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S.%f")
        completed.append(f"hydra.output_subdir={HYDRA_DIR}/{RESUMED_PREFIX}{stamp}")
    return _replace(_latest_per_key(completed), "ckpt_path", str(checkpoint))


def _check_links_stay_inside(run_dir: Path) -> None:
    """A link in the folder would redirect the run's writes (metrics, logs) to another place."""
    root = os.path.realpath(run_dir)
    for folder, subfolders, files in os.walk(run_dir, followlinks=False):
        for name in [*subfolders, *files]:
            path = os.path.join(folder, name)
            if os.path.islink(path) and not _inside(os.path.realpath(path), root):
                raise ResumeError(
                    f"{path} is a link to {os.path.realpath(path)}, outside the run folder: "
                    "refused, since resuming would write through it; replace it with the files"
                )
        if Path(folder) == run_dir / WANDB_DIR:
            # Each launch writes a new wandb run folder; the old ones hold wandb's own links
            # (its debug logs point into its cache), which nothing writes through again.
            subfolders.clear()


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


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
    if folder.name == CHECKPOINT_DIR and (folder.parent / OVERRIDES_FILE).is_file():
        return checkpoint.parent.parent
    return None


MAX_OVERRIDES_BYTES = 1 << 20


def _original_overrides(run_dir: Path) -> list[str]:
    path = run_dir / OVERRIDES_FILE
    if path.stat().st_size > MAX_OVERRIDES_BYTES:
        raise ResumeError(f"{path} is larger than {MAX_OVERRIDES_BYTES} bytes: not Hydra's record")
    try:
        # safe_load keeps YAML aliases shared: a few bytes cannot expand into gigabytes.
        items = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError, RecursionError) as error:
        raise ResumeError(f"{path} is not readable YAML ({one_line(error)})") from None
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        raise ResumeError(
            f"{path} is not a list of overrides as Hydra writes it; restore it from the run's "
            "original launch, or resume with ckpt_path=PATH hydra.run.dir=NEW_FOLDER"
        )
    return items


def _check_replayable(overrides: list[str], source: Path, replaced: set[str]) -> None:
    """Refuse a run folder's override that could run code or write outside the folder.

    `replaced`: keys the command line sets itself; the folder's values for them are not used.
    """
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except Exception as error:  # Hydra's parser raises its own OverrideParseException
        raise ResumeError(f"{source}: an override does not parse ({one_line(error)})") from None
    for override, text in zip(parsed, overrides, strict=True):
        if override.key_or_group in replaced:
            continue
        interpolates = "${" in text or _holds_interpolation(override.value())
        problem = "interpolates (${…}: it could read the environment)" if interpolates else None
        problem = problem or _replay_problem(override)
        if problem is not None:
            raise ResumeError(
                f"{source} holds {text!r}, which {problem}: refused, since a run folder may "
                "come from anyone; delete that line, or give the override on the command "
                "line yourself if you trust it"
            )


def _replay_problem(override: Override) -> str | None:
    key = override.key_or_group
    if override.is_hydra_override():
        return "changes Hydra's own settings"
    adds_or_deletes = override.is_add() or override.is_force_add() or override.is_delete()
    if adds_or_deletes or override.package is not None:
        return "adds or deletes a config node"
    if override.is_sweep_override():
        return "is a sweep, not one run's setting"
    if TARGET in key.split(".") or _names_target(override.value()):
        return "names code to run (_target_)"
    if any(WRITE_LOCATION.match(leaf) for leaf in _leaf_keys(key, override.value())):
        return "moves where the run writes"
    options, value = _group_options(key), override.value()
    if (
        options is not None
        and value is not None
        and (not isinstance(value, str) or value not in options)
    ):
        return f"chooses a config the project does not have (one of {', '.join(sorted(options))})"
    return None


def _leaf_keys(key: str, value: Any) -> Iterator[str]:
    """`key` and every key inside a mapping or list value (`logger.csv={save_dir: …}`)."""
    yield key
    if isinstance(value, dict):
        for inner, item in value.items():
            yield from _leaf_keys(f"{key}.{inner}", item)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _leaf_keys(f"{key}.{index}", item)


def _holds_interpolation(value: Any) -> bool:
    """Whether a parsed value holds `${…}`, also written with Hydra's escapes (`$\\{…\\}`)."""
    if isinstance(value, str):
        return "${" in value
    if isinstance(value, dict):
        return any(_holds_interpolation(k) or _holds_interpolation(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_holds_interpolation(v) for v in value)
    return False


def _names_target(value: Any) -> bool:
    if isinstance(value, dict):
        return TARGET in value or any(_names_target(v) for v in value.values())
    if isinstance(value, list):
        return any(_names_target(v) for v in value)
    return False


def _group_options(group: str) -> set[str] | None:
    """The options of config group `group` (conf/<group>/*.yaml), None if it is not a group."""
    folder = EXPERIMENTS_DIR if group == "experiment" else CONF_DIR / group
    if not folder.is_dir() or "." in group:
        return None
    return {path.stem for path in folder.glob("*.yaml")}


def check_write_locations(cfg: DictConfig) -> None:
    """A resumed run writes only inside its folder: checkpoints, loggers, Lightning's root."""
    root = os.path.realpath(cfg.paths.output_dir)
    nodes = {f"callbacks.{k}": v for k, v in cfg.callbacks.items()}
    nodes |= {f"logger.{k}": v for k, v in cfg.logger.items()} | {"trainer": cfg.trainer}
    for where, node in nodes.items():
        for key in ("dirpath", "save_dir", "default_root_dir", "dir", "log_dir"):
            folder = node.get(key) if isinstance(node, DictConfig) else None
            if folder is not None and not _inside(os.path.realpath(str(folder)), root):
                raise ResumeError(
                    f"{where}.{key}={folder}: a resumed run writes only inside its folder {root}"
                )
        is_wandb = str(node.get("_target_", "")).endswith("wandb_logger")  # its name is a label
        for key in ("filename", "version", *(() if is_wandb else ("name",))):
            part = node.get(key) if isinstance(node, DictConfig) else None
            if part is not None and ("/" in str(part) or str(part) in (".", "..")):
                raise ResumeError(
                    f"{where}.{key}={part}: must be a plain name, inside the run's folder"
                )


def check_targets(cfg: DictConfig) -> None:
    """Refuse a config whose `_target_`s are not among those the project's configs name."""
    allowed = project_targets()
    for where, target in _targets(OmegaConf.to_container(cfg, resolve=True)):
        if target not in allowed:
            raise ResumeError(
                f"{where}._target_={target}: the project's configs do not name it, and a "
                "resumed run instantiates only what they name; remove the override that sets it"
            )


@functools.cache
def project_targets() -> frozenset[str]:
    """Every `_target_` value in conf/ and experiments/."""
    files = [*CONF_DIR.rglob("*.yaml"), *EXPERIMENTS_DIR.glob("*.yaml")]
    return frozenset(
        target
        for path in files
        for _, target in _targets(OmegaConf.to_container(OmegaConf.load(path)))
    )


def _targets(node: Any, where: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == TARGET:
                yield where or "<root>", value
            else:
                yield from _targets(value, f"{where}.{key}" if where else str(key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _targets(value, f"{where}[{index}]")


def _keys_of(args: list[str]) -> set[str]:
    overrides = [arg for arg in args if "=" in arg and not arg.startswith("-")]
    try:
        return {o.key_or_group for o in OverridesParser.create().parse_overrides(overrides)}
    except Exception:  # a malformed override: Hydra reports it
        return set()


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
