"""The project's own error types: a problem the user can fix, named in one line.

Only these are shown as a one-line message without a traceback (HYDRA_FULL_ERROR=1 shows it):
any other exception, a `ValueError` deep in torch included, is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
from typing import NoReturn


class ChargptError(Exception):
    """A problem with the user's settings or files; the message names it and says what to do."""


class SettingError(ChargptError, ValueError):
    """A setting (a config key, a command-line argument) with a value it cannot take."""


def user_error(error: BaseException) -> BaseException | None:
    """The user-fixable error behind `error` (Hydra wraps errors raised while instantiating)."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, ChargptError):
            return error
        seen.add(id(error))
        error = error.__cause__
    return None


def one_line(error: BaseException) -> str:
    """The first line of an error's message (its type name when the message is empty)."""
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


class OneLineArgumentParser(argparse.ArgumentParser):
    """argparse whose mistakes raise SettingError, printed as the command's other one-liners."""

    def error(self, message: str) -> NoReturn:
        raise SettingError(message)
