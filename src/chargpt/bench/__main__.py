"""`python -m chargpt.bench [train|overhead|generate] ...`: `train` when no subcommand is named."""

from __future__ import annotations

import importlib
import sys

import chargpt.bench as package
from chargpt.cli import run_command

SUBCOMMANDS = {
    "train": "chargpt.bench.training",
    "overhead": "chargpt.bench.overhead",
    "generate": "chargpt.bench.generation",
}


def main(argv: list[str] | None = None) -> int:
    """A bad setting or override ends the benchmark with one line and exit code 2."""
    return run_command("chargpt.bench", _dispatch, argv, config_errors=True)


def _dispatch(argv: list[str]) -> None:
    if argv and argv[0] in ("-h", "--help"):
        print(package.__doc__)
        return
    name, rest = (argv[0], argv[1:]) if argv and argv[0] in SUBCOMMANDS else ("train", argv)
    # Imported on demand: each subcommand has its own dependencies and start-up cost.
    try:
        module = importlib.import_module(SUBCOMMANDS[name])
    except ModuleNotFoundError as error:
        if error.name != SUBCOMMANDS[name]:
            raise
        sys.exit(f"python -m chargpt.bench {name}: {SUBCOMMANDS[name]} is not installed here")
    module.main(rest)


if __name__ == "__main__":
    sys.exit(main())
