"""Checkpoints written atomically: a killed process never leaves a truncated `last.ckpt` behind."""

from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from chargpt.errors import ChargptError
from chargpt.runs.files import open_atomically


class CheckpointSaveError(ChargptError, OSError):
    """A checkpoint could not be written (a full disk, a lost mount); the earlier ones stand."""


def _os_error_behind(error: BaseException) -> OSError | None:
    """The OSError that `error` is, or that torch's writer turned into "unexpected pos ..."."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, OSError):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


class AtomicCheckpointIO(TorchCheckpointIO):
    """Save to a temporary file in the target's folder, flush it to disk, rename it over the target.

    Lightning's own saver writes through fsspec, whose temporary file lives in the system temp
    folder: moving it onto another file system is a copy, which a kill can cut short. A rename
    within one folder is atomic, so readers see the old checkpoint or the new one, never half.
    A save that completes also deletes what killed saves of the same file left behind.
    """

    def save_checkpoint(
        self,
        checkpoint: dict[str, Any],
        path: str | os.PathLike,
        storage_options: Any | None = None,
    ) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        target = Path(path)
        try:
            with open_atomically(target) as file:
                torch.save(checkpoint, file)
        except (OSError, RuntimeError) as error:
            cause = _os_error_behind(error)
            if cause is None:
                raise
            raise CheckpointSaveError(
                f"could not save {target}: {cause.strerror or cause}; free space or fix "
                f"{target.parent}, then resume: the checkpoints saved before are intact"
            ) from cause
        # One process saves each checkpoint, so any other temporary file of it is a killed save's.
        for leftover in target.parent.glob(f".{glob.escape(target.name)}.*.tmp"):
            leftover.unlink(missing_ok=True)

    def remove_checkpoint(self, path: str | os.PathLike) -> None:
        """Delete a replaced checkpoint: one regular `.ckpt` file, never a folder or a link.

        Lightning's own deletes recursively whatever path its callback state names, and a
        resumed checkpoint's state is untrusted.
        """
        target = Path(path)
        if target.suffix == ".ckpt" and target.is_file() and not target.is_symlink():
            target.unlink()
