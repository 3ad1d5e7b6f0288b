"""Bad input through `run.py`: one line naming the problem and its fix, exit 1, no traceback.

One test per kind of mistake, as a user would make it on the command line.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from helpers import TINY, run

from chargpt.data.corpus import CORPORA
from chargpt.errors import SettingError, user_error


def one_line_error(args: list[str], cwd: Path | None = None) -> str:
    """Run, expect failure, and return the single line the user sees on stderr."""
    kwargs = {} if cwd is None else {"cwd": cwd}
    result = run(args, check=False, full_error=False, **kwargs)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr[-3000:]
    assert lines[0].startswith("error: ") and "Traceback" not in result.stdout + result.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("model.n_head=3", "model.d_model=64 is not divisible by model.n_head=3"),
        ("model.n_layer=0", "model.n_layer=0"),
        ("model.d_model=-8", "model.d_model=-8"),
        ("model.dropout=1.0", "model.dropout=1.0: must be in [0, 1)"),
        ("model.dropout=-0.1", "model.dropout=-0.1: must be in [0, 1)"),
        ("model.norm=batchnorm", "model.norm='batchnorm': must be one of layernorm, rmsnorm"),
        ("model.mlp=relu", "model.mlp='relu': must be one of"),
        ("model.norm_position=middle", "model.norm_position='middle': must be one of pre, post"),
        ("model.pos_encoding=rotary", "model.pos_encoding='rotary': must be one of"),
        ("model.n_kv_head=3", "model.n_kv_head=3 does not divide model.n_head=4: choose one of"),
        ("optimizer.algorithm=sgd", "optimizer.algorithm='sgd': must be one of adamw, muon"),
        ("data.batch_size=0", "data.batch_size=0: must be a positive integer"),
        ("data.batch_size=-4", "data.batch_size=-4: must be a positive integer"),
        ("trainer.max_steps=0", "trainer.max_steps=0: must be a positive number of steps"),
        ("callbacks.sample.window=crop", "callbacks.sample.window='crop': must be one of"),
        (
            "callbacks.sample.max_new_tokens=100000000",
            "callbacks.sample.max_new_tokens=100000000: 1 samples of 100000001 tokens",
        ),
        ("trainer.max_steps=-1", "trainer.max_steps=-1: must be a positive number of steps"),
        ("logger.wandb.mode=cloud", "logger.wandb.mode='cloud': must be one of"),
        # Each of these was a traceback, or passed, before it was checked here.
        (
            "trainer.accumulate_grad_batches=0",
            "accumulate_grad_batches=0: must be a positive whole",
        ),
        ("trainer.val_every_n_steps=0", "val_every_n_steps=0: must be a positive number of"),
        ("trainer.val_every_n_steps=0.5", "trainer.val_every_n_steps=0.5: must be a positive"),
        ("trainer.gradient_clip_val=-1", "trainer.gradient_clip_val=-1: must be a number >= 0"),
        ("optimizer.lr=abc", "optimizer.lr='abc': must be a finite number"),
        ("optimizer.lr=inf", "optimizer.lr=inf: must be a finite number"),
        ("optimizer.weight_decay=nan", "optimizer.weight_decay=nan: must be a finite number"),
        ("optimizer.eps=-1", "optimizer.eps=-1: must be > 0"),
        ("data.splits=abc", "data.splits='abc'"),
        ("data.num_workers=-1", "data.num_workers=-1: must be an integer >= 0"),
        ("seed=-1", "seed=-1: must be a whole number from 0 to 4294967295"),
        ("seed=abc", "seed='abc': must be a whole number from 0 to 4294967295"),
        ("+seeed=1", "seeed: not a setting of run.py (did you mean seed?)"),
    ],
)
def test_bad_setting(tmp_path, play_file, override, message):
    line = one_line_error(
        ["data=text", f"data.path={play_file}", *TINY, override, f"hydra.run.dir={tmp_path}/r"]
    )
    assert message in line
    assert not (tmp_path / "r").exists()  # no run folder, run.json or wandb run for a typo


def test_bad_setting_in_a_sweep_is_recorded_per_job(tmp_path, play_file):
    args = ["-m", "data=text", f"data.path={play_file}", *TINY, "seed=-1,-2"]
    result = run([*args, f"hydra.sweep.dir={tmp_path}/s"], check=False, full_error=False)
    assert result.returncode == 1
    for job in (0, 1):
        record = json.loads((tmp_path / "s" / str(job) / "run.json").read_text())
        assert record["status"] == "failed" and "must be a whole number" in record["error"]


@pytest.mark.skipif(
    torch.cuda.is_available() or torch.backends.mps.is_available(),
    reason="needs a machine without a GPU",
)
@pytest.mark.parametrize("override", ["trainer=gpu", "experiment=baby_gpt"])
def test_gpu_run_without_a_gpu(tmp_path, play_file, override):
    line = one_line_error(
        [override, "data=text", f"data.path={play_file}", *TINY, f"hydra.run.dir={tmp_path}/r"]
    )
    assert line.startswith("error: trainer.accelerator=gpu: PyTorch sees no GPU here")
    assert "train on the CPU (trainer=cpu)" in line


def test_block_size_longer_than_the_validation_split(tmp_path, play_file):
    line = one_line_error(
        [
            "data=text",
            f"data.path={play_file}",
            *TINY,
            "model.block_size=512",
            f"hydra.run.dir={tmp_path}/r",
        ]
    )
    assert "the val split has" in line and "fewer than block_size + 1 = 513" in line
    assert "lower model.block_size" in line


def data_error(tmp_path: Path, path: Path, *extra: str) -> str:
    return one_line_error(
        ["data=text", f"data.path={path}", *TINY, *extra, f"hydra.run.dir={tmp_path}/r"]
    )


def test_missing_data_file(tmp_path):
    line = data_error(tmp_path, tmp_path / "absent.txt")
    assert f"text file not found: {tmp_path / 'absent.txt'}; check data.path" in line


def test_directory_instead_of_a_file(tmp_path):
    assert "is not a file: data.path must name a UTF-8 text file" in data_error(tmp_path, tmp_path)


def test_empty_data_file(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    assert f"{empty} is empty" in data_error(tmp_path, empty)


def test_single_distinct_character(tmp_path):
    same = tmp_path / "aaa.txt"
    same.write_text("a" * 5000)
    assert "holds a single distinct character: there is nothing to learn" in data_error(
        tmp_path, same
    )


def test_bytes_that_are_not_utf8_name_the_offset_and_the_option(tmp_path, play_text):
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes(play_text.encode() + "café".encode("latin-1"))
    line = data_error(tmp_path, latin1)
    offset = len(play_text.encode()) + 3
    assert f"invalid byte 0xe9 at offset {offset}" in line
    assert "data.encoding_errors=replace" in line
    # ...and the documented option reads the file.
    replace = ["data.encoding_errors=replace", "trainer.max_steps=2", "logger=none"]
    run(["data=text", f"data.path={latin1}", *TINY, *replace, f"hydra.run.dir={tmp_path}/ok"])


def test_corpus_checksum_mismatch(tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    tampered = data_dir / CORPORA["shakespeare"].filename
    tampered.write_text("First Citizen: tampered\n")
    actual = hashlib.sha256(tampered.read_bytes()).hexdigest()
    line = one_line_error(
        ["data=shakespeare", f"paths.data_dir={data_dir}", *TINY, f"hydra.run.dir={tmp_path}/r"]
    )
    assert f"does not match the published shakespeare corpus (sha256 {actual}" in line
    assert "delete it to download it again" in line


def test_failed_run_keeps_earlier_outputs(tmp_path, play_file):
    """A second launch with a bad flag into a finished run's folder changes nothing there."""
    run_dir = tmp_path / "run"
    run(["data=text", f"data.path={play_file}", *TINY, "logger=csv", f"hydra.run.dir={run_dir}"])
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    one_line_error([f"ckpt_path={run_dir}/checkpoints/last.ckpt", "model.n_head=3"])
    after = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file() and p in before}
    log = run_dir / "run.log"  # only grows: the failed launch's error is appended
    assert {p: b for p, b in after.items() if p != log} == {
        p: b for p, b in before.items() if p != log
    }
    assert after[log].startswith(before[log]) and b"model.n_head=3" in after[log]


@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[Path]:
    """No one can write in `folder` meanwhile: chmod binds other users, a read-only mount root."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield folder
        finally:
            folder.chmod(0o755)
        return
    mounted = subprocess.run(["mount", "--bind", str(folder), str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"as root, a read-only folder needs a bind mount: {mounted.stderr!r}")
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)], check=True)
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def test_a_read_only_place_for_a_new_run_is_one_line(tmp_path, play_file):
    (tmp_path / "outputs").mkdir()
    with read_only(tmp_path / "outputs") as outputs:
        line = one_line_error(
            ["data=text", f"data.path={play_file}", *TINY, f"hydra.run.dir={outputs}/r"]
        )
    assert line.startswith(f"error: cannot write the run's outputs to {outputs}/r ({outputs}: ")
    assert "choose a writable place with hydra.run.dir=FOLDER" in line


def test_a_read_only_run_folder_cannot_be_resumed_and_stays_as_it_was(tmp_path, play_file):
    run_dir = tmp_path / "run"
    run(["data=text", f"data.path={play_file}", *TINY, "logger=csv", f"hydra.run.dir={run_dir}"])
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    with read_only(run_dir / "checkpoints") as checkpoints:
        line = one_line_error(
            ["ckpt_path=last", f"hydra.run.dir={run_dir}", "trainer.max_steps=30"]
        )
    assert line.startswith(f"error: cannot write the run's outputs to {run_dir} ({checkpoints}:")
    assert {p: p.read_bytes() for p in run_dir.rglob("*") if p in before} == before


@pytest.mark.parametrize("layout", ["existing-folder", "existing-empty-parent"])
def test_a_failed_launch_removes_only_what_it_created(tmp_path, play_file, layout):
    mine = tmp_path / "mine"
    mine.mkdir()
    run_dir = mine if layout == "existing-folder" else mine / "run"
    one_line_error(["data=text", f"data.path={play_file}", "seed=-1", f"hydra.run.dir={run_dir}"])
    assert mine.is_dir()  # the user's folder stays, empty or not
    assert not (mine / "run").exists() and not (mine / "run.json").exists()


def test_only_the_projects_own_errors_are_user_errors():
    """A ValueError from deep inside torch is a bug: it keeps its traceback, not a tidy line."""
    assert user_error(ValueError("expected 2D input")) is None
    setting = SettingError("optimizer.lr=0: must be > 0")
    wrapped = RuntimeError("Error in call to target")
    wrapped.__cause__ = setting  # as Hydra wraps an error raised while instantiating
    assert user_error(wrapped) is setting
