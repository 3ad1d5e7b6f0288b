"""Atomic checkpoint writes: a process killed mid-save leaves the previous checkpoint intact."""

from __future__ import annotations

import contextlib
import errno
import io
import os
import signal
import stat
import subprocess
import sys
import textwrap

import pytest
import torch

from chargpt.training import checkpoint_io
from chargpt.training.checkpoint_io import AtomicCheckpointIO, CheckpointSaveError

# Saves over an existing checkpoint, but its torch.save writes a few bytes and then hangs,
# as a save would when the process is killed half-way.
SAVE_THEN_HANG = textwrap.dedent(
    """
    import sys, time, torch
    from chargpt.training.checkpoint_io import AtomicCheckpointIO

    def hanging_save(obj, file, *args, **kwargs):
        file.write(b"PK half a checkpoint")
        file.flush()
        print("writing", flush=True)
        time.sleep(120)

    torch.save = hanging_save
    AtomicCheckpointIO().save_checkpoint({"step": 2}, sys.argv[1])
    """
)


def test_sigkill_during_save_keeps_the_previous_checkpoint(tmp_path):
    target = tmp_path / "checkpoints" / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"step": 1, "w": torch.ones(3)}, target)
    process = subprocess.Popen(
        [sys.executable, "-c", SAVE_THEN_HANG, str(target)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout.readline().strip() == "writing"
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        process.kill()
    assert process.returncode == -signal.SIGKILL
    kept = torch.load(target, weights_only=True)
    assert kept["step"] == 1 and torch.equal(kept["w"], torch.ones(3))
    # The half-written file is a hidden temporary beside it, never a *.ckpt.
    leftovers = [p.name for p in target.parent.iterdir() if p != target]
    assert len(leftovers) == 1 and leftovers[0].startswith(".last.ckpt.")
    assert not leftovers[0].endswith(".ckpt")
    # The next save of that checkpoint clears the leftover; other files' saves leave it be.
    AtomicCheckpointIO().save_checkpoint({"step": 3}, target.parent / "best.ckpt")
    assert (target.parent / leftovers[0]).exists()
    AtomicCheckpointIO().save_checkpoint({"step": 3}, target)
    assert sorted(p.name for p in target.parent.iterdir()) == ["best.ckpt", "last.ckpt"]


def test_save_replaces_the_checkpoint_with_ordinary_permissions(tmp_path):
    target = tmp_path / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"step": 1}, target)
    io.save_checkpoint({"step": 2}, target)
    assert io.load_checkpoint(target)["step"] == 2
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]
    assert stat.S_IMODE(target.stat().st_mode) & 0o044  # readable like any file, not 0600


class FullDisk(io.RawIOBase):
    """A file on a disk that fills up after `room` bytes."""

    def __init__(self, file, room: int) -> None:
        self.file, self.room = file, room

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        if len(data) > self.room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= len(data)
        return self.file.write(data)


def test_a_full_disk_names_its_cause_and_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    target = tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"step": 1}, target)
    before = target.read_bytes()
    real = checkpoint_io.open_atomically

    @contextlib.contextmanager
    def filling_up(path):
        with real(path) as file:
            yield FullDisk(file, room=4096)

    monkeypatch.setattr(checkpoint_io, "open_atomically", filling_up)
    with pytest.raises(CheckpointSaveError, match="No space left on device") as error:
        AtomicCheckpointIO().save_checkpoint({"weights": torch.randn(100_000)}, target)
    assert str(error.value).startswith(f"could not save {target}: No space left on device")
    assert "unexpected pos" not in str(error.value)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]  # no temporary file left


def test_removing_a_checkpoint_never_removes_a_folder_or_a_link(tmp_path):
    folder = tmp_path / "precious"
    folder.mkdir()
    (folder / "kept.ckpt").write_text("x")
    link = tmp_path / "link.ckpt"
    link.symlink_to(folder / "kept.ckpt")
    checkpoint_io = AtomicCheckpointIO()
    for path in (folder, link, tmp_path / "gone.txt"):
        checkpoint_io.remove_checkpoint(path)
    assert (folder / "kept.ckpt").read_text() == "x" and link.is_symlink()
    checkpoint_io.remove_checkpoint(folder / "kept.ckpt")
    assert not (folder / "kept.ckpt").exists()
