"""The per-run table: the settings that differ between runs, then each run's results.

Columns are the keys whose values differ. Keys set on the command line come first (`model/size`,
`model.norm_position`). A config value that a swept config group sets (`model.n_layer` under
`model/size`, anything under `experiment`) is left out when it follows from the swept values, so
a sweep shows the grid it swept and nothing twice; any other difference is shown. Rows are plain
strings in a `chargpt.cli.Table`, shown with rich in the terminal and as markdown in `compare.md`.

The grouped table, one row per group of seeds, is `chargpt.compare.group_table`.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

from chargpt.cli import Table
from chargpt.runs.read import INCOMPLETE, NOT_STARTED, Run
from chargpt.runs.record import ABSENT, RESULT_LABELS
from chargpt.runs.variant import is_setting

EXPERIMENT = "experiment"  # the group of experiments/*.yaml, which may set any key
NUMBER_COLUMNS = RESULT_LABELS  # right-aligned; `Results` declares them
RESULT_COLUMNS = (*RESULT_LABELS, "status")
STATUS_ORDER = ("finished", "running", "interrupted", "failed", INCOMPLETE, NOT_STARTED)


def differing_keys(runs: Sequence[Run]) -> list[str]:
    """The settings whose values differ between the runs, those set on the command line first."""
    keys = dict.fromkeys(key for run in runs for key in run.settings)
    differing = [
        key
        for key in keys
        if not _is_noise(key)
        and len({show(v) for _, v in _known(runs, key)}) > 1
        and not _only_moved(key, runs)
    ]
    swept = [k for k in dict.fromkeys(k for run in runs for k in run.overridden) if k in differing]
    rest = sorted(k for k in differing if k not in swept and not _set_by_group(k, swept, runs))
    return swept + rest


def _only_moved(key: str, runs: Sequence[Run]) -> bool:
    """A `_target_` whose class is the same in every run and only its module moved (a run from
    before a move of the code is the same experiment)."""
    if not key.endswith("_target_"):
        return False
    names = {str(value).rpartition(".")[2] for _, value in _known(runs, key) if value is not None}
    return len(names) == 1 and all(value is not None for _, value in _known(runs, key))


def _is_noise(key: str) -> bool:
    """Where files went, names, the resume checkpoint (`chargpt.runs.variant.NOT_SETTINGS`)."""
    return not is_setting(key)


def _set_by_group(key: str, swept: list[str], runs: Sequence[Run]) -> bool:
    """Whether a swept group choice can set `key`, and runs alike in what was swept agree on it."""
    groups = [k for k in swept if _is_group(k, runs)]
    packages = {group.split("/")[0] for group in groups}  # presets are `# @package model`
    if EXPERIMENT not in groups and key.split(".")[0] not in packages:
        return False
    values = defaultdict(set)
    for run, value in _known(runs, key):
        values[tuple(show(run.settings.get(k)) for k in swept)].add(show(value))
    return all(len(seen) == 1 for seen in values.values())


def _known(runs: Sequence[Run], key: str) -> list[tuple[Run, Any]]:
    """The runs that know their value of `key`, with it (None where a full config lacks it)."""
    return [(run, run.settings.get(key)) for run in runs if key in run.settings or not run.partial]


def _is_group(key: str, runs: Sequence[Run]) -> bool:
    """`model/size`, `data`, `experiment`: a config group, not a value (`seed`, `model.mlp`)."""
    if "/" in key or key == EXPERIMENT:
        return True
    return any(name.startswith(f"{key}.") for run in runs for name in run.settings)


def sort_runs(runs: Sequence[Run]) -> list[Run]:
    """Best validation loss first; runs without one last, in path order."""
    ranked = sorted(
        (run for run in runs if run.best_val_loss is not None), key=lambda r: r.best_val_loss
    )
    return ranked + [run for run in runs if run.best_val_loss is None]


def comparison_table(runs: Sequence[Run], keys: Sequence[str]) -> Table:
    """One row per run: its label, its values of `keys`, its results and its status."""
    rows = [
        [
            run.label,
            *(show(run.settings.get(key)) for key in keys),
            *run.table_cells(),
            f"{run.status}: {run.error}" if run.error else run.status,
        ]
        for run in runs
    ]
    return Table(["run", *keys, *RESULT_COLUMNS], rows, right=NUMBER_COLUMNS)


def status_counts(runs: Sequence[Run]) -> str:
    """`3 finished, 1 running, 2 not started`."""
    counts = Counter(run.status for run in runs)
    ordered = sorted(counts, key=lambda s: STATUS_ORDER.index(s) if s in STATUS_ORDER else 99)
    return ", ".join(f"{counts[status]} {status}" for status in ordered)


def unfinished_note(runs: Sequence[Run]) -> str | None:
    """A line for a half-finished comparison: how many runs have a result, and what the rest are."""
    unfinished = [run for run in runs if run.status != "finished"]
    if not unfinished:
        return None
    finished = len(runs) - len(unfinished)
    return (
        f"{finished} of {plural(len(runs), 'run')} finished; the rest are marked in the status "
        f"column ({status_counts(unfinished)}). Runs without a val/loss are listed last."
    )


def show(value: Any) -> str:
    """A setting as written on the command line: 0.002, pre, [0.9, 0.95]; absent as '-'."""
    if value is None:
        return ABSENT
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list | tuple):
        return "[" + ", ".join(show(item) for item in value) + "]"
    if isinstance(value, str) and (not value.isprintable() or not value.strip()):
        return repr(value)  # a newline or blank prompt stays visible in one cell
    return str(value)


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
