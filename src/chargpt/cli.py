"""What the commands share: running one (a one-line error and exit code 2 for the user's mistakes)
and showing a table, with rich in the terminal or as markdown in a report.

Commands only: no library package imports this module. rich, Hydra and OmegaConf are imported
when needed, so a command that uses none of them (sample) starts without them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from chargpt.errors import one_line, user_error

if TYPE_CHECKING:
    from rich.console import Console

USER_ERROR_EXIT = 2  # as argparse exits for a bad argument
WIDE = 160  # columns a table may take when output goes to a file or pipe


def run_command(
    prog: str,
    body: Callable[[list[str]], int | None],
    argv: Sequence[str] | None = None,
    *,
    config_errors: bool = False,
) -> int:
    """Run `body` on the arguments (sys.argv's by default) and return the exit code.

    The project's own errors print `PROG: error: <one line>` on stderr and return 2; with
    `config_errors` (a command that composes or parses configs), so do OmegaConf's and Hydra's.
    Any other exception is a bug and goes on, with its traceback.
    """
    arguments = sys.argv[1:] if argv is None else list(argv)
    try:
        code = body(arguments)
    except Exception as error:
        message = error_message(error, config_errors)
        if message is None:
            raise
        print(f"{prog}: error: {message}", file=sys.stderr)
        return USER_ERROR_EXIT
    return 0 if code is None else code


def error_message(error: BaseException, config_errors: bool = False) -> str | None:
    """The one line that tells the user what to fix; None for an error that is a bug."""
    found = user_error(error)
    if found is not None:
        return one_line(found)
    if not config_errors:
        return None
    from hydra.errors import HydraException, InstantiationException
    from omegaconf.errors import OmegaConfBaseException

    if isinstance(error, InstantiationException) and error.__cause__ is not None:
        error = error.__cause__  # the config's own complaint, without Hydra's wrapping
    elif not isinstance(error, HydraException | OmegaConfBaseException):
        return None
    message = one_line(error)
    key = getattr(error, "full_key", None)  # OmegaConf names the key on a later line
    if key and key not in message:
        message = f"{key}: {message}"
    return message


@dataclass(frozen=True)
class Table:
    """Rows of plain strings under named columns; `right`: the columns aligned right (numbers)."""

    columns: Sequence[str]
    rows: Sequence[Sequence[str]]
    right: Collection[str] = ()
    title: str = ""
    note: str = ""  # shown under the table


def wide_console() -> Console:
    """A rich console; into a file or pipe, wide enough that tables stay unwrapped."""
    from rich.console import Console

    console = Console()
    if not console.is_terminal:
        console.width = max(console.width, WIDE)
    return console


def print_table(table: Table, console: Console) -> None:
    """The table with rich; into a file or pipe, as wide as it needs, never wrapped. Cells are
    text, not rich markup: a setting `[0.9, 0.95]` shows as written."""
    from rich.markup import escape
    from rich.table import Table as RichTable

    rich_table = RichTable(
        title=escape(table.title) or None,
        caption=escape(table.note) or None,
        title_justify="left",
        caption_justify="left",
    )
    for column in table.columns:
        justify = "right" if column in table.right else "left"
        rich_table.add_column(escape(column), justify=justify)
    for row in table.rows:
        rich_table.add_row(*map(escape, row))
    if not console.is_terminal:
        console.width = max(console.width, table_width(table))
    console.print(rich_table)


def table_width(table: Table) -> int:
    """The characters a table takes unwrapped in rich's default box: each column's widest
    cell, a space either side and a rule."""
    widths = [len(column) for column in table.columns]
    for row in table.rows:
        widths = [max(width, len(cell)) for width, cell in zip(widths, row, strict=True)]
    return sum(widths) + 3 * len(widths) + 1


def to_markdown(table: Table) -> str:
    """The table as a markdown grid (its title and note are the document's to place)."""
    rule = ["---:" if column in table.right else "---" for column in table.columns]
    lines = [_markdown_row(table.columns), _markdown_row(rule)]
    lines += [_markdown_row(row) for row in table.rows]
    return "\n".join(lines)


def _markdown_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def format_bytes(n: float) -> str:
    """A byte count in B, KiB, MiB, GiB or TiB, one decimal."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")
