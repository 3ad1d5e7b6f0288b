"""One run as the comparison sees it, read from the files `run.py` leaves in its folder.

`run.json` gives the outcome, `.hydra/` the settings and `csv/metrics.csv` (or the TensorBoard
files) the validation and training curves; see README, "Where outputs go". Where a run has no
`run.json` (killed outright, or still starting) its metrics still count.
"""

from __future__ import annotations

import contextlib
import csv
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from chargpt.runs.layout import (
    CONFIG_FILE,
    HPARAMS_FILE,
    HYDRA_FILE,
    METRICS_FILE,
    OVERRIDES_FILE,
    TENSORBOARD_DIR,
)
from chargpt.runs.record import RESULT_METRICS, Results, RunRecord, logged_results
from chargpt.runs.renamed import RENAMED

INCOMPLETE = "incomplete"  # no run.json: the status is unknown
NOT_STARTED = "not started"  # a sweep job without a folder yet


@dataclass
class Run(Results):
    """What one run left behind: where, its status and settings, and its results (`Results`)."""

    path: Path
    status: str
    error: str | None = None
    # Flattened config (`model.n_layer`) and Hydra group choices (`model/size`), as written.
    settings: dict[str, Any] = field(default_factory=dict)
    # Settings known only in part (a job not started knows its overrides): a key it lacks is
    # unknown, not absent.
    partial: bool = False
    # The keys set on the run's command line, in order: the columns people swept.
    overridden: list[str] = field(default_factory=list)
    val_curve: list[tuple[int, float]] = field(default_factory=list)  # (step, val/loss)
    train_curve: list[tuple[int, float]] = field(default_factory=list)  # (step, train/loss)
    # (step, training seconds so far, validation excluded): `perf/training_s`.
    time_curve: list[tuple[int, float]] = field(default_factory=list)
    global_step: int | None = None  # optimizer steps, from run.json
    label: str = ""

    @property
    def tokens_per_step(self) -> float | None:
        """Training tokens per optimizer step (batch × context × accumulation × processes)."""
        if self.tokens_seen and self.global_step:
            return self.tokens_seen / self.global_step
        return None

    @property
    def flops_per_token(self) -> float | None:
        return self.flops / self.tokens_seen if self.flops and self.tokens_seen else None


def load_run_dir(path: Path) -> Run:
    """A run folder: run.json for the outcome, .hydra for the settings, metrics for the curve."""
    record = _read_record(path)
    config = _read_yaml(path / CONFIG_FILE) or {}
    hydra = (_read_yaml(path / HYDRA_FILE) or {}).get("hydra", {})
    choices = hydra.get("runtime", {}).get("choices", {})
    overrides = record.overrides if record else _read_yaml(path / OVERRIDES_FILE) or []
    curve, train_curve, time_curve, last_logged = read_metrics(path)
    from_logs: dict[str, Any] = logged_results(last_logged)
    hparams = _read_yaml(path / HPARAMS_FILE)
    num_params = hparams.get("num_params") if isinstance(hparams, dict) else None
    if isinstance(num_params, int) and not isinstance(num_params, bool):
        from_logs["num_params"] = num_params
    # run.json's figures are the run's own; the logs are the fallback.
    from_record = record.known_results() if record is not None else {}
    run = Run(
        path=path,
        status=record.status if record else INCOMPLETE,
        error=record.error if record else None,
        settings=_current_keys(flatten(config)) | choices,
        overridden=[_current_key(override_key(o)) for o in overrides],
        val_curve=curve,
        train_curve=train_curve,
        time_curve=time_curve,
        global_step=record.global_step if record else None,
        **(from_logs | from_record),
    )
    if _finite(run.best_val_loss) is None:  # none in run.json, or a diverged run's NaN
        run.set_best_val_loss(min((loss for _, loss in curve), default=None))
    return run


def _current_key(key: str) -> str:
    """A setting's key today: a run folder written before a key moved still compares."""
    return RENAMED[key][0] if key in RENAMED else key


def _current_keys(settings: dict[str, Any]) -> dict[str, Any]:
    return {_current_key(key): value for key, value in settings.items()}


def _read_record(path: Path) -> RunRecord | None:
    try:
        return RunRecord.load(path)
    except (OSError, ValueError, TypeError):
        return None  # missing, or being rewritten this instant: the logs still tell a lot


def _read_yaml(path: Path) -> Any:
    """A YAML file as plain data (None if missing), interpolations left as written.

    Resolving `${hydra:…}` or `${paths.data_dir}` would need Hydra's runtime and the machine the
    run ran on; as written, they are the same in every run and so never count as a difference.
    """
    if not path.is_file():
        return None
    return OmegaConf.to_container(OmegaConf.load(path), resolve=False)


def flatten(node: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"model": {"n_layer": 2}} -> {"model.n_layer": 2}."""
    flat: dict[str, Any] = {}
    for key, value in node.items():
        if isinstance(value, dict):
            flat |= flatten(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def override_key(override: str) -> str:
    """`+model.x=1` -> `model.x`; `model/size=tiny` -> `model/size`."""
    return re.sub(r"^[+~]+", "", override.partition("=")[0])


Curve = list[tuple[int, float]]
# (val/loss, train/loss, perf/training_s) curves, the last value of each result metric
Metrics = tuple[Curve, Curve, Curve, dict[str, float]]
VAL_METRIC = "val/loss"
TRAIN_METRIC = "train/loss"
TIME_METRIC = "perf/training_s"
CURVE_METRICS = (VAL_METRIC, TRAIN_METRIC, TIME_METRIC)  # in `Metrics`' order


def read_metrics(run_dir: Path) -> Metrics:
    """The val/loss and train/loss curves, the training-time curve, and the last value of each
    metric a result falls back on (`Results`), from CSV or else TensorBoard files."""
    metrics = run_dir / METRICS_FILE
    if metrics.is_file():
        return _read_csv_metrics(metrics)
    events = sorted(run_dir.glob(f"{TENSORBOARD_DIR}/**/events.out.tfevents.*"))
    if events:
        return _read_tensorboard(events[0].parent)
    return [], [], [], {}


def _read_csv_metrics(path: Path) -> Metrics:
    curves: tuple[Curve, ...] = tuple([] for _ in CURVE_METRICS)
    last: dict[str, float] = {}
    # A garbled file (bad bytes, a NUL) keeps the rows read before it: one run's damage must
    # not stop a comparison.
    with (
        open(path, newline="", encoding="utf-8", errors="replace") as file,
        contextlib.suppress(csv.Error),
    ):
        for row in csv.DictReader(file):
            for curve, metric in zip(curves, CURVE_METRICS, strict=True):
                _append_point(curve, row, metric)  # rows are sparse
            for metric in RESULT_METRICS:
                with contextlib.suppress(TypeError, ValueError):
                    if row.get(metric):
                        last[metric] = float(row[metric])
    val_curve, train_curve, time_curve = curves
    return val_curve, train_curve, time_curve, last


def _append_point(curve: Curve, row: dict[str, str], metric: str) -> None:
    """(step, value) from a metrics row that holds a finite `metric`; a running job may be
    rewriting the file, so anything else is skipped."""
    try:
        value = float(row.get(metric) or "nan")
        if _finite(value) is not None:
            curve.append((int(row["step"]), value))
    except (TypeError, ValueError):
        pass


def _read_tensorboard(log_dir: Path) -> Metrics:
    # Imported here: tensorboard loads slowly, and only runs with logger=tensorboard need it.
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(log_dir), size_guidance={"scalars": 0})
    events.Reload()
    tags = events.Tags()["scalars"]
    val_curve, train_curve, time_curve = (
        [(e.step, e.value) for e in events.Scalars(tag) if _finite(e.value) is not None]
        if tag in tags
        else []
        for tag in CURVE_METRICS
    )
    last = {metric: events.Scalars(metric)[-1].value for metric in RESULT_METRICS if metric in tags}
    return val_curve, train_curve, time_curve, last


def _finite(value: float | None) -> float | None:
    """None for NaN and infinities: a diverged run has no best loss to rank by."""
    return value if value is not None and math.isfinite(value) else None
