"""Which settings make a variant: everything but the seed and where files go.

Runs of one variant over several seeds share a variant name, so dashboards can group them
(wandb's "Group by variant" draws each group's mean and spread) and compare can pool them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from fnmatch import fnmatch

from chargpt.runs.read import override_key

# Keys that only change the random draw.
SEED_KEYS = ("seed", "data.seed")
# Keys that differ from run to run without changing the experiment: where files went, the Hydra
# and path groups, the resume checkpoint, the loggers (which, and their settings: the wandb
# run's name and group, its project).
NOT_SETTINGS = (
    "paths.*",
    "paths",
    "hydra.*",
    "hydra/*",
    "hydra",
    "local",
    "ckpt_path",
    "num_params",
    "variant",
    "run_name",
    "data.data_dir",
    "logger",
    "logger.*",
    "callbacks.*.dirpath",
    "trainer.default_root_dir",
)
DEFAULT_VARIANT = "default"  # no override besides the seed and paths


def is_setting(key: str) -> bool:
    """Whether `key` (`model.n_layer`, `model/size`) can tell one experiment from another."""
    return not any(fnmatch(key, pattern) for pattern in NOT_SETTINGS)


def variant_name(overrides: Sequence[str]) -> str:
    """`model.norm_position=post,model.tie_weights=false` from a run's command-line overrides,
    less its seed and where files go; `default` when nothing else was overridden."""
    kept = [
        override
        for override in overrides
        if (key := override_key(override)) not in SEED_KEYS and is_setting(key)
    ]
    return ",".join(sorted(kept)) or DEFAULT_VARIANT


LABEL_MAX_CHARS = 120  # a folder name must stay well under the file systems' 255 bytes


def run_label(overrides: Sequence[str], job_num: int | None = None) -> str:
    """A run's name in the dashboards: its settings' overrides, seed included, as given
    (`model.n_layer=2,seed=1`), after its job number in a sweep (`3-model.n_layer=2,seed=1`);
    `default` when nothing was overridden."""
    kept = [override for override in overrides if is_setting(override_key(override))]
    label = ",".join(kept) or DEFAULT_VARIANT
    return label if job_num is None else f"{job_num}-{label}"


def folder_label(label: str) -> str:
    """`label` as one folder name: no path separator (`model/size=small` -> `model_size=small`),
    and a long one cut, with a digest of the whole that keeps cut names apart."""
    name = label.replace("/", "_").replace("\\", "_").replace("\0", "")
    if name in ("", ".", ".."):
        name = DEFAULT_VARIANT
    if len(name) <= LABEL_MAX_CHARS:
        return name
    digest = hashlib.sha256(label.encode()).hexdigest()[:8]
    return f"{name[: LABEL_MAX_CHARS - 9]}~{digest}"
