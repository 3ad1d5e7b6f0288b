"""run.json and summary.csv: every declared result is written; a run.json that is not a record
(it is untrusted input) is a ValueError, never a crash."""

from __future__ import annotations

import csv
import json
import math
import os
import typing

import pytest

from chargpt.runs.files import RunBusyError, run_lock
from chargpt.runs.record import RESULTS, Results, RunRecord, write_sweep_summary


def example_value(name: str) -> int | float:
    """A value for the result `name` that no default or other field has."""
    return 1_234_567 if int in typing.get_args(typing.get_type_hints(Results)[name]) else 2.375


@pytest.mark.parametrize(
    "content",
    ["[1, 2]", '"text"', "null", '{"num_params": "many"}', '{"overrides": [1]}', "[" * 100_000],
)
def test_a_run_json_that_is_not_a_record_is_a_value_error(tmp_path, content):
    (tmp_path / "run.json").write_text(content)
    with pytest.raises(ValueError, match=r"run\.json"):
        RunRecord.load(tmp_path)


def test_a_record_round_trips(tmp_path):
    record = RunRecord(run_dir=str(tmp_path), overrides=["seed=1"], num_params=10)
    record.set_best_val_loss(2.0)
    record.save()
    assert RunRecord.load(tmp_path) == record


def test_a_run_json_from_before_a_result_was_added_still_loads(tmp_path):
    older = {"run_dir": str(tmp_path), "status": "finished", "best_val_loss": 2.5, "wall_s": 3}
    (tmp_path / "run.json").write_text(json.dumps(older))
    record = RunRecord.load(tmp_path)
    assert (record.best_val_loss, record.wall_s) == (2.5, 3)
    assert record.test_loss is None and record.tokens_seen is None


def test_run_json_keeps_flat_keys_with_the_identity_first(tmp_path):
    RunRecord(run_dir=str(tmp_path), tokens_seen=10).save()
    keys = list(json.loads((tmp_path / "run.json").read_text()))
    results = [f.name for f, _ in RESULTS]
    assert keys[0] == "run_dir" and keys[-len(results) :] == results


@pytest.mark.parametrize(("result", "column"), RESULTS, ids=[f.name for f, _ in RESULTS])
def test_every_declared_result_is_a_summary_csv_column(tmp_path, result, column):
    value = example_value(result.name)
    job = tmp_path / "0"
    job.mkdir()
    RunRecord(run_dir=str(job), job_num=0, **{result.name: value}).save()
    write_sweep_summary(tmp_path)
    with open(tmp_path / "summary.csv", newline="") as file:
        (row,) = csv.DictReader(file)
    assert row[result.name] == column.csv(value) != ""
    assert getattr(RunRecord.load(job), result.name) == value


def test_one_process_at_a_time_holds_a_run_folder(tmp_path):
    with run_lock(tmp_path):
        pid = os.fork()
        if pid == 0:  # another process: refused while the first holds the folder
            try:
                with run_lock(tmp_path):
                    os._exit(1)
            except RunBusyError:
                os._exit(0)
        assert os.waitpid(pid, 0)[1] == 0
    with run_lock(tmp_path):  # released with the first holder
        pass


def test_the_lock_never_follows_a_link(tmp_path):
    (tmp_path / "elsewhere").write_text("keep")
    (tmp_path / ".lock").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(RunBusyError, match="cannot lock"), run_lock(tmp_path):
        pass
    assert (tmp_path / "elsewhere").read_text() == "keep"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('"wall_s": Infinity', {"wall_s": None}),
        ('"best_val_loss": NaN', {"best_val_loss": None, "val_bpc": None}),
        ('"best_val_loss": 2.0, "val_bpc": 1', {"val_bpc": 2.0 / math.log(2)}),
    ],
)
def test_results_that_are_not_finite_numbers_are_unknown(tmp_path, text, expected):
    (tmp_path / "run.json").write_text(f'{{"run_dir": "x", {text}}}')
    record = RunRecord.load(tmp_path)
    assert {key: getattr(record, key) for key in expected} == expected


@pytest.mark.parametrize("key", ["tokens_seen", "num_params", "wall_s"])
def test_a_number_too_large_for_any_run_is_not_a_record(tmp_path, key):
    (tmp_path / "run.json").write_text(f'{{"run_dir": "x", "{key}": {10**400}}}')
    with pytest.raises(ValueError, match=key):
        RunRecord.load(tmp_path)
