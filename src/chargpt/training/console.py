"""What a run shows: its own messages through `logging`, the libraries' noise off at its source.

Every message of a run (its settings, each validation's loss and sample, the summary, warnings)
goes through the `chargpt` loggers to two places that Hydra's job logging sets up from
conf/hydra/default.yaml: the console (`ConsoleHandler`) and the run folder's run.log. Lightning's
own messages and Python warnings are routed the same way, so run.log holds what the console
showed. `quiet_libraries` turns off what a user does not need (Lightning's tips and device
lines, known deprecation warnings); `verbose=true` keeps all of it.
"""

from __future__ import annotations

import logging
import sys
import warnings
from typing import TextIO

LOG = logging.getLogger("chargpt")
# A record with `extra={ALWAYS: True}` reaches a quiet console too (a sweep's line per job).
ALWAYS = "chargpt_always"

# Lightning's loggers: they print through handlers of their own and do not propagate.
LIGHTNING_LOGGERS = ("lightning.pytorch", "lightning.fabric", "lightning")
# Warnings about code that is not ours, which a user can do nothing about: (message, module).
KNOWN_WARNINGS = (
    # Lightning 2.6 calls a torch.utils._pytree API that torch 2.13 deprecates.
    (r".*isinstance\(treespec, LeafSpec\).*", r"lightning\.pytorch\.utilities\._pytree"),
    # Every resume trains on in its own folder, which holds its checkpoints by design.
    (r"Checkpoint directory .* exists and is not empty", r"lightning\.pytorch\.callbacks\..*"),
)


class ConsoleHandler(logging.StreamHandler):
    """Messages to stdout, warnings and errors to stderr, found when written.

    The stream is looked up for each record: while the progress bar is drawn, rich replaces
    sys.stdout with a proxy that prints above the bar. A quiet handler (a sweep's jobs) shows
    only warnings, errors and records marked `ALWAYS`.
    """

    def __init__(self, quiet: bool = False) -> None:
        super().__init__()
        self.quiet = quiet

    @property
    def stream(self) -> TextIO:
        return sys.stdout

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass  # always the current sys.stdout or sys.stderr

    def filter(self, record: logging.LogRecord) -> bool:
        if self.quiet and record.levelno < logging.WARNING and not getattr(record, ALWAYS, False):
            return False
        return bool(super().filter(record))

    def emit(self, record: logging.LogRecord) -> None:
        stream = sys.stderr if record.levelno >= logging.WARNING else sys.stdout
        try:
            stream.write(self.format(record) + self.terminator)
            stream.flush()
        except Exception:
            self.handleError(record)


def quiet_libraries(verbose: bool) -> None:
    """Route Lightning's messages and Python's warnings into the run's logging; unless
    `verbose`, keep only Lightning's warnings and drop the known deprecation warnings."""
    for name in LIGHTNING_LOGGERS:
        library_logger = logging.getLogger(name)
        for handler in list(library_logger.handlers):
            library_logger.removeHandler(handler)
        library_logger.propagate = True
        library_logger.setLevel(logging.INFO if verbose else logging.WARNING)
    logging.captureWarnings(True)  # warnings reach run.log, not only the terminal
    warnings_logger = logging.getLogger("py.warnings")
    if _strip_newlines not in warnings_logger.filters:
        warnings_logger.addFilter(_strip_newlines)
    if not verbose:
        for message, module in KNOWN_WARNINGS:
            warnings.filterwarnings("ignore", message=message, module=module)


def set_console_quiet(quiet: bool) -> None:
    """Quiet (or not) the console handlers Hydra's job logging made; run.log is unchanged."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, ConsoleHandler):
            handler.quiet = quiet


def log_always(message: str) -> None:
    """A message even a quiet console shows (one line per finished sweep job)."""
    LOG.info(message, extra={ALWAYS: True})


def _strip_newlines(record: logging.LogRecord) -> bool:
    """A captured warning's text ends in a newline, and a handler adds one: no blank lines."""
    record.msg = str(record.msg).rstrip("\n")
    return True
