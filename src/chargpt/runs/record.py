"""What a run leaves behind for people and tools: `run.json` in its folder, `summary.csv` per sweep.

`run.json` is written when a run starts (status "running") and rewritten when it ends, so a
half-finished sweep can be told apart from a finished one. The sweep's `summary.csv` is rebuilt
from its jobs' `run.json` files each time a job ends: parallel jobs never edit a shared file.

A run's results are declared once, as the fields of `Results`, each with its column: run.json's
keys, summary.csv's columns, and compare's run (`chargpt.runs.read.Run`) and table are made from
that list, so a new result is one field.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import typing
from collections.abc import Callable, Mapping
from dataclasses import Field, asdict, dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import Any

from chargpt.runs.files import write_atomically
from chargpt.runs.layout import RUN_FILE, SUMMARY_FILE

STATUSES = ("running", "finished", "failed", "interrupted")
ABSENT = "-"  # a result compare's table does not know


def format_count(count: int) -> str:
    """1234 -> 1.2K, 110_500 -> 110.5K, 2_340_000 -> 2.34M."""
    if count >= 1_000_000:
        return f"{count / 1e6:.2f}M"
    return f"{count / 1e3:.1f}K" if count >= 1000 else str(count)


def format_duration(seconds: float) -> str:
    """48.6 s, 3m 05s, 2h 01m."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def scientific(value: float) -> str:
    """3.46e+12: a FLOPs count."""
    return f"{value:.3g}"


def decimals(digits: int, grouped: bool = False) -> Callable[[float], str]:
    """A float with `digits` decimals (and thousands separators when `grouped`)."""
    spec = f"{',' if grouped else ''}.{digits}f"
    return lambda value: format(value, spec)


@dataclass(frozen=True)
class ResultColumn:
    """How one result is shown: its heading and text in compare's table, its text in summary.csv,
    and the logged metric whose last value stands in where run.json lacks the result (a run
    killed before it wrote one, a wandb folder)."""

    label: str
    cell: Callable[[Any], str]
    csv: Callable[[Any], str] = str
    metric: str | None = None


def result(
    label: str,
    cell: Callable[[Any], str],
    csv: Callable[[Any], str] = str,
    metric: str | None = None,
) -> Any:
    """A field of `Results`: unknown (None) until the run reports it."""
    return field(default=None, metadata={"column": ResultColumn(label, cell, csv, metric)})


@dataclass(kw_only=True)
class Results:
    """A run's results: each field is a key of run.json, a column of summary.csv (named as the
    field) and of compare's table (its label), in this order. A new result is one field here.

    Losses are in nats per character, bpc in bits per character; tokens are training tokens
    (characters), counted over the whole run, validation excluded, and FLOPs the training
    arithmetic they cost.
    """

    num_params: int | None = result("params", format_count)
    best_val_loss: float | None = result("best val loss", decimals(4), decimals(4))
    val_bpc: float | None = result("val bpc", decimals(3), decimals(4))
    test_loss: float | None = result("test loss", decimals(4), decimals(4), "test/loss")
    tokens_seen: int | None = result("tokens seen", format_count)
    # tokens_seen × training FLOPs per token (chargpt.model.parameters)
    flops: int | None = result("FLOPs", scientific)
    tokens_per_s: float | None = result(
        "tokens/s", decimals(0, grouped=True), decimals(0), "perf/tokens_per_s"
    )
    wall_s: float | None = result("wall time", format_duration, decimals(1))

    def set_best_val_loss(self, loss: float | None) -> None:
        self.best_val_loss = loss
        self.val_bpc = None if loss is None else loss / math.log(2)

    def known_results(self) -> dict[str, Any]:
        """The results known so far, by field name."""
        return {
            name: getattr(self, name) for name in RESULT_NAMES if getattr(self, name) is not None
        }

    def table_cells(self) -> list[str]:
        """The results as compare's table shows them, under RESULT_LABELS."""
        return [_shown(getattr(self, f.name), column.cell, ABSENT) for f, column in RESULTS]

    def csv_cells(self) -> list[str]:
        """The results as summary.csv holds them, under RESULT_NAMES."""
        return [_shown(getattr(self, f.name), column.csv, "") for f, column in RESULTS]


RESULTS: tuple[tuple[Field, ResultColumn], ...] = tuple(
    (f, f.metadata["column"]) for f in fields(Results)
)
RESULT_NAMES = tuple(f.name for f, _ in RESULTS)
RESULT_LABELS = tuple(column.label for _, column in RESULTS)
SUMMARY_COLUMNS = ("job", "status", "overrides", *RESULT_NAMES, "run_dir", "error")
# The logged metrics whose last values stand in for results: `test/loss`, `perf/tokens_per_s`.
RESULT_METRICS = tuple(column.metric for _, column in RESULTS if column.metric)


def logged_results(last_values: Mapping[str, Any]) -> dict[str, float]:
    """The results that logged metrics stand in for, from each metric's last value (untrusted:
    only numbers count)."""
    found = {}
    for f, column in RESULTS:
        value = last_values.get(column.metric) if column.metric else None
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            found[f.name] = float(value)
    return found


def _shown(value: Any, formatter: Callable[[Any], str], absent: str) -> str:
    return absent if value is None else formatter(value)


def _now() -> str:
    return datetime.now().isoformat(timespec="seconds")


@dataclass
class RunRecord(Results):
    """The run's identity, progress and results, as stored in `run.json` (all keys flat)."""

    run_dir: str
    overrides: list[str] = field(default_factory=list)
    job_num: int | None = None
    status: str = "running"
    error: str | None = None
    global_step: int = 0
    started: str = field(default_factory=_now)
    ended: str | None = None
    wandb_id: str | None = None

    @property
    def path(self) -> Path:
        return Path(self.run_dir) / RUN_FILE

    def save(self) -> None:
        data = asdict(self)
        identity_first = sorted(data, key=lambda key: key in RESULT_NAMES)  # a stable sort
        text = json.dumps({key: data[key] for key in identity_first}, indent=2)
        write_atomically(self.path, text + "\n")

    def end(self, status: str, error: str | None = None) -> None:
        if status not in STATUSES:
            raise ValueError(f"unknown run status {status!r}")
        self.status = status
        self.error = error
        self.ended = _now()
        self.save()

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
        known = {key: value for key, value in data.items() if key in kinds}
        for key, value in known.items():
            if not _is_field_value(value, *kinds[key]):
                raise ValueError(f"{path}: {key}={value!r} is not a {kinds[key][0].__name__}")
        # A result that is not a finite number (a diverged run's NaN loss) is not known.
        for key in RESULT_NAMES:
            value = known.get(key)
            if isinstance(value, float) and not math.isfinite(value):
                known[key] = None
        record = cls(**known)
        if record.best_val_loss is not None:
            record.set_best_val_loss(record.best_val_loss)  # bpc follows from it, not the file
        return record


def _field_kinds() -> dict[str, tuple[type, bool]]:
    """Each RunRecord field's type and whether it may be null, read off the dataclass itself."""
    kinds = {}
    for name, hint in typing.get_type_hints(RunRecord).items():
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        nullable = type(None) in typing.get_args(hint)
        kind = typing.get_origin(args[0] if nullable else hint) or (args[0] if nullable else hint)
        kinds[name] = (kind, nullable)
    return kinds


MAX_NUMBER = 2**63  # no count or figure of a run is larger; a longer one is not a record's


def _is_field_value(value: Any, kind: type, nullable: bool) -> bool:
    """Whether run.json's `value` fits a field (a float may be written as a whole number)."""
    if value is None:
        return nullable
    if isinstance(value, bool):
        return False
    if kind is float:  # a float beyond the finite ones becomes unknown; a huge int never fits
        return isinstance(value, float) or (isinstance(value, int) and abs(value) <= MAX_NUMBER)
    if kind is int:
        return isinstance(value, int) and abs(value) <= MAX_NUMBER
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
        identity = [record.job_num, record.status, " ".join(record.overrides)]
        writer.writerow([*identity, *record.csv_cells(), record.run_dir, record.error or ""])
    write_atomically(Path(sweep_dir) / SUMMARY_FILE, buffer.getvalue())
    return records
