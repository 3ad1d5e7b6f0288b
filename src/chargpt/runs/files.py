"""Files in a run folder written safely: atomically replaced, and the folder's lock."""

from __future__ import annotations

import fcntl
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from chargpt.errors import ChargptError
from chargpt.runs.layout import LOCK_FILE


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


FILE_MODE = 0o666 & ~_current_umask()  # what open() would give; mkstemp's files are private


@contextmanager
def open_atomically(path: Path) -> Iterator[BinaryIO]:
    """A binary file that becomes `path` only when the block ends without an error.

    It is a hidden temporary file beside `path` (`.NAME.*.tmp`), flushed to disk, then renamed
    over `path`: a rename within one folder is atomic, so readers see the old file or the new
    one, never half, even if the process is killed mid-write.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, FILE_MODE)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_atomically(path: Path, data: str | bytes) -> None:
    """Write `data` to `path` through `open_atomically`."""
    with open_atomically(path) as file:
        file.write(data.encode("utf-8") if isinstance(data, str) else data)


class RunBusyError(ChargptError):
    """Another process is training in this run folder."""


@contextmanager
def run_lock(run_dir: str | os.PathLike) -> Iterator[None]:
    """Hold the run folder for this process: a second launch into it (a resume) is refused.

    An advisory `flock` on `.lock`: the system releases it when the process ends, also when it
    is killed, so a stale lock can never block a resume.
    """
    path = Path(run_dir) / LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    try:  # read-only is enough for flock; never through a link someone left in the folder
        descriptor = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW, FILE_MODE)
    except OSError as error:
        raise RunBusyError(
            f"cannot lock {path} ({error.strerror}): delete it if it is not a plain file"
        ) from None
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        raise RunBusyError(
            f"{run_dir} is being trained by another process right now; wait for it to end "
            "(or stop it: it saves last.ckpt) and resume then"
        ) from None
    try:
        yield
    finally:
        os.close(descriptor)
