"""Errors the user can fix: the command line prints their message as one line, without a traceback.

`ValueError` is treated the same way: every bad setting raises one with a message naming the key.
"""

from __future__ import annotations

import argparse
from typing import NoReturn


class ChargptError(Exception):
    """A problem with the user's settings or files; the message names it and says what to do."""


USER_ERRORS: tuple[type[BaseException], ...] = (ChargptError, ValueError)


def user_error(error: BaseException) -> BaseException | None:
    """The user-fixable error behind `error` (Hydra wraps errors raised while instantiating)."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, USER_ERRORS):
            return error
        seen.add(id(error))
        error = error.__cause__
    return None


def one_line(error: BaseException) -> str:
    """The first line of an error's message (its type name when the message is empty)."""
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


class OneLineArgumentParser(argparse.ArgumentParser):
    """argparse whose mistakes raise ValueError: the command prints them as its other one-liners."""

    def error(self, message: str) -> NoReturn:
        raise ValueError(message)
