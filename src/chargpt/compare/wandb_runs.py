"""Runs read from a wandb folder (`offline-run-*` or `run-*`), offline, with wandb's own reader.

An offline run keeps everything in its `.wandb` log (in wandb 0.31 `files/config.yaml` and
`files/wandb-summary.json` appear only once synced). `wandb leet inspect` is wandb's command for
reading that log without a server: `--summary --json` gives state, config and last values, and
`--json` every record, among them the history rows that make the val/loss curve.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from types import UnionType
from typing import Any

from chargpt.errors import ChargptError
from chargpt.runs.layout import is_run_dir
from chargpt.runs.read import Run, flatten
from chargpt.runs.record import logged_results

RUN_PREFIXES = ("offline-run-", "run-")
STEP_KEYS = ("trainer/global_step", "_step")  # Lightning's step, else wandb's row number


def is_wandb_run(path: Path) -> bool:
    return path.name.startswith(RUN_PREFIXES) and any(path.glob("*.wandb"))


def find_wandb_runs(folder: Path) -> list[Path]:
    """The wandb runs in a wandb folder, or in the `wandb/` folder inside it."""
    for candidate in (folder, folder / "wandb"):
        if candidate.is_dir():
            runs = sorted(p for p in candidate.iterdir() if p.is_dir() and is_wandb_run(p))
            if runs:
                return runs
    return []


def link_wandb_runs(runs: Sequence[Run], folder: Path) -> list[Path]:
    """Link the wandb runs inside the run folders into one folder, for `wandb leet FOLDER`.

    LEET's workspace shows the runs of one wandb folder, and each sweep job has its own; the
    links (relative, so the tree can move) put a whole sweep in one workspace. Links left by an
    earlier comparison are replaced; nothing else in the folder is touched.
    """
    targets = [p for run in runs if is_run_dir(run.path) for p in find_wandb_runs(run.path)]
    if not targets:
        return []
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.iterdir():
        if old.is_symlink() and old.name.startswith(RUN_PREFIXES):  # not wandb's `latest-run`
            old.unlink()
    links = []
    for target in targets:
        link = folder / target.name
        if not link.exists():
            link.symlink_to(os.path.relpath(target.resolve(), folder.resolve()))
            links.append(link)
    return links


def load_wandb_run(path: Path) -> Run:
    return _run_from(path, inspect_run(path, "--summary"), inspect_run(path))


def inspect_run(path: Path, *options: str) -> Any:
    """`wandb leet inspect --json [options] PATH`: one JSON object, or a list of records."""
    command = [sys.executable, "-m", "wandb", "leet", "inspect", "--json", *options, str(path)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        reason = (result.stderr.strip().splitlines() or ["no message"])[-1]
        raise ChargptError(f"{path}: wandb leet inspect failed: {reason}")
    if "--summary" in options:
        return json.loads(result.stdout)
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def _run_from(path: Path, summary: dict[str, Any], records: list[dict[str, Any]]) -> Run:
    config = {k: v for k, v in summary.get("config", {}).items() if not k.startswith("_")}
    values = summary.get("summary", {})
    curve = val_curve(records)
    run = Run(
        path=path,
        status=_status(summary.get("state")),
        error=_error(summary),
        settings=flatten(config),
        val_curve=curve,
        num_params=_number(config.get("num_params"), int),
        wall_s=_number(values.get("_runtime"), int | float),
        **logged_results(values),  # the last values of the metrics that stand in for results
    )
    run.set_best_val_loss(min((loss for _, loss in curve), default=None))
    return run


def val_curve(records: list[dict[str, Any]]) -> list[tuple[int, float]]:
    curve = []
    for record in records:
        item = record.get("history", {}).get("item", {}) if record.get("type") == "history" else {}
        step = next((item[key] for key in STEP_KEYS if key in item), None)
        loss = item.get("val/loss")
        if step is not None and isinstance(loss, int | float) and math.isfinite(loss):
            curve.append((int(step), float(loss)))
    return curve


def _number(value: Any, kind: type | UnionType) -> Any:
    """`value` if it is a number of `kind` (the files are untrusted), else None."""
    return value if isinstance(value, kind) and not isinstance(value, bool) else None


def _status(state: str | None) -> str:
    """wandb's states in the run.json vocabulary (a crashed run was killed: interrupted)."""
    return {"crashed": "interrupted", "killed": "interrupted"}.get(state or "", state or "running")


def _error(summary: dict[str, Any]) -> str | None:
    """A failed run's exit code: run.py prints the error after the wandb run has closed."""
    return f"exit code {summary.get('exit_code')}" if summary.get("state") == "failed" else None
