"""How a printed hint calls the project's commands, so that it works from any directory."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

# The console scripts pyproject.toml installs, and the modules they run.
TRAIN = ("chargpt-train", "chargpt.train")
COMPARE = ("chargpt-compare", "chargpt.compare")


def command(entry: tuple[str, str]) -> str:
    """`chargpt-train` when that name runs this environment's script; else the script's
    absolute path (a virtual environment that is not activated); else `python -m MODULE`
    with this interpreter's absolute path."""
    script, module = entry
    own = Path(sys.executable).parent / script
    found = shutil.which(script)
    if found is not None and own.is_file() and Path(found).resolve() == own.resolve():
        return script
    if own.is_file():
        return str(own)
    return f"{sys.executable} -m {module}"
