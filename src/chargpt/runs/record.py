"""What a run leaves behind for people and tools: `run.json` in its folder, `summary.csv` per sweep.

`run.json` is written when a run starts (status "running") and rewritten when it ends, so a
half-finished sweep can be told apart from a finished one. The sweep's `summary.csv` is rebuilt
from its jobs' `run.json` files each time a job ends: parallel jobs never edit a shared file.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import typing
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from chargpt.runs.files import write_atomically
from chargpt.runs.layout import RUN_FILE, SUMMARY_FILE

STATUSES = ("running", "finished", "failed", "interrupted")
SUMMARY_COLUMNS = (
    "job",
    "status",
    "overrides",
    "best_val_loss",
    "val_bpc",
    "num_params",
    "tokens_per_s",
    "wall_s",
    "run_dir",
    "error",
)


def _now() -> str:
    return datetime.now().isoformat(timespec="seconds")


@dataclass
class RunRecord:
    """The run's identity and outcome, as stored in `run.json`."""

    run_dir: str
    overrides: list[str] = field(default_factory=list)
    job_num: int | None = None
    status: str = "running"
    error: str | None = None
    num_params: int | None = None
    global_step: int = 0
    best_val_loss: float | None = None
    val_bpc: float | None = None
    test_loss: float | None = None
    tokens_per_s: float | None = None
    wall_s: float | None = None
    started: str = field(default_factory=_now)
    ended: str | None = None
    wandb_id: str | None = None

    @property
    def path(self) -> Path:
        return Path(self.run_dir) / RUN_FILE

    def save(self) -> None:
        write_atomically(self.path, json.dumps(asdict(self), indent=2) + "\n")

    def end(self, status: str, error: str | None = None) -> None:
        if status not in STATUSES:
            raise ValueError(f"unknown run status {status!r}")
        self.status = status
        self.error = error
        self.ended = _now()
        self.save()

    def set_best_val_loss(self, loss: float | None) -> None:
        self.best_val_loss = loss
        self.val_bpc = None if loss is None else loss / math.log(2)

    @classmethod
    def load(cls, run_dir: str | os.PathLike) -> RunRecord:
        """The record in `run_dir`; ValueError if run.json is not a record (it is untrusted)."""
        path = Path(run_dir) / RUN_FILE
        try:
            data: Any = json.loads(path.read_text(encoding="utf-8"))
        except RecursionError:  # nested deeper than Python's stack: not a record either
            raise ValueError(f"{path} is nested too deeply to be a run record") from None
        if not isinstance(data, dict):
            raise ValueError(f"{path} holds JSON {type(data).__name__}, not a run record")
        kinds = _field_kinds()
        fields = {key: value for key, value in data.items() if key in kinds}
        for key, value in fields.items():
            if not _is_field_value(value, *kinds[key]):
                raise ValueError(f"{path}: {key}={value!r} is not a {kinds[key][0].__name__}")
        return cls(**fields)


def _field_kinds() -> dict[str, tuple[type, bool]]:
    """Each RunRecord field's type and whether it may be null, read off the dataclass itself."""
    kinds = {}
    for name, hint in typing.get_type_hints(RunRecord).items():
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        nullable = type(None) in typing.get_args(hint)
        kind = typing.get_origin(args[0] if nullable else hint) or (args[0] if nullable else hint)
        kinds[name] = (kind, nullable)
    return kinds


def _is_field_value(value: Any, kind: type, nullable: bool) -> bool:
    """Whether run.json's `value` fits a field (a float may be written as a whole number)."""
    if value is None:
        return nullable
    if isinstance(value, bool):
        return False
    if kind is float:
        return isinstance(value, int | float)
    if kind is list:
        return isinstance(value, list) and all(isinstance(item, str) for item in value)
    return isinstance(value, kind)


def job_records(sweep_dir: str | os.PathLike) -> list[RunRecord]:
    """The `run.json` of every job folder in a sweep, in job order."""
    records = []
    for path in Path(sweep_dir).glob(f"*/{RUN_FILE}"):
        try:
            records.append(RunRecord.load(path.parent))
        except (OSError, ValueError, TypeError):
            continue  # a job that is writing its record right now; the next rebuild sees it
    return sorted(records, key=lambda r: (r.job_num is None, r.job_num or 0, r.run_dir))


def write_sweep_summary(sweep_dir: str | os.PathLike) -> list[RunRecord]:
    """Rebuild `summary.csv` from the jobs' records; returns them."""
    records = job_records(sweep_dir)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(SUMMARY_COLUMNS)
    for record in records:
        writer.writerow(
            [
                record.job_num,
                record.status,
                " ".join(record.overrides),
                _fmt(record.best_val_loss),
                _fmt(record.val_bpc),
                record.num_params,
                _fmt(record.tokens_per_s, digits=0),
                _fmt(record.wall_s, digits=1),
                record.run_dir,
                record.error or "",
            ]
        )
    write_atomically(Path(sweep_dir) / SUMMARY_FILE, buffer.getvalue())
    return records


def _fmt(value: float | None, digits: int = 4) -> str:
    return "" if value is None else f"{value:.{digits}f}"
