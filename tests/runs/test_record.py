"""run.json is untrusted input: a record that is not one is a ValueError, never a crash."""

from __future__ import annotations

import os

import pytest

from chargpt.runs.files import RunBusyError, run_lock
from chargpt.runs.record import RunRecord


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
