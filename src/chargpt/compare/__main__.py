"""Compare runs from their local files: a table sorted by best validation loss, plus plots.

    python -m chargpt.compare multirun/2026-11-24/10-00-00.123456   # one sweep
    python -m chargpt.compare multirun/                              # every sweep below it
    python -m chargpt.compare outputs/2026-11-24/09-* --out cmp       # single runs
    chargpt-compare outputs/2026-11-24/09-12-01.491453/wandb         # wandb runs (offline files)

PATH is a run folder, a sweep (multirun) folder, a folder holding either (searched three levels
deep), or a wandb folder or run. Only local files are read: no network, no wandb server.

The table has one row per run, best val loss first: the settings that differ between the runs
(command-line overrides first), then the results (`chargpt.runs.record.Results`: parameters, best
val loss in nats/char, val bpc in bits/char, test loss, training tokens seen and per second over
the whole run, wall time) and the status (finished, failed with its error, interrupted, running,
incomplete: no run.json, not started: a sweep job still to come). compare.md (the table) and
val_loss_vs_step.png, best_val_loss_vs_params.png go to --out: by default the folder given, when
it is a single folder of runs (a sweep), else comparison/ in the current directory. Links to
every run's wandb run go to --out/wandb, so `wandb leet OUT/wandb` browses them all in one view.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from rich.console import Console

from chargpt.cli import Table, print_table, run_command, to_markdown, wide_console
from chargpt.compare.discovery import find_runs, holds_runs
from chargpt.compare.plots import write_plots
from chargpt.compare.table import (
    comparison_table,
    differing_keys,
    plural,
    sort_runs,
    status_counts,
    unfinished_note,
)
from chargpt.compare.wandb_runs import link_wandb_runs
from chargpt.errors import OneLineArgumentParser
from chargpt.runs.read import Run

PROG = "chargpt.compare"
REPORT_FILE = "compare.md"
WANDB_LINKS = "wandb"  # a folder of links to every run's wandb run, for `wandb leet`
DEFAULT_OUT = Path("comparison")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = OneLineArgumentParser(
        prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="runs to compare")
    parser.add_argument(
        "--out",
        type=Path,
        help="folder for compare.md and the plots (default: the sweep given, else ./comparison)",
    )
    return parser.parse_args(argv)


def default_out(paths: list[Path]) -> Path:
    """The folder of runs when only one is given (a sweep's report sits in the sweep)."""
    return paths[0] if len(paths) == 1 and holds_runs(paths[0]) else DEFAULT_OUT


def run(args: argparse.Namespace, console: Console) -> None:
    runs = find_runs(args.paths)
    keys = differing_keys(runs)
    runs = sort_runs(runs)
    table = comparison_table(runs, keys)
    print_table(replace(table, title=f"{plural(len(runs), 'run')}: {status_counts(runs)}"), console)
    note = unfinished_note(runs)
    if note:
        console.print(note)
    out = args.out or default_out(args.paths)
    out.mkdir(parents=True, exist_ok=True)
    images = write_plots(runs, keys, out)
    report = markdown_report(args.paths, runs, table, [image.name for image in images])
    (out / REPORT_FILE).write_text(report, encoding="utf-8")
    console.print(f"Wrote {REPORT_FILE}, {', '.join(image.name for image in images)} to {out}")
    links = link_wandb_runs(runs, out / WANDB_LINKS)
    if links:
        count = plural(len(links), "wandb run")
        console.print(f"Browse the {count} together, offline: wandb leet {out / WANDB_LINKS}")


def markdown_report(paths: list[Path], runs: list[Run], table: Table, images: list[str]) -> str:
    lines = [
        "# Run comparison",
        "",
        f"- compared: {', '.join(f'`{path}`' for path in paths)}",
        f"- on: {datetime.now().isoformat(sep=' ', timespec='seconds')}",
        f"- runs: {status_counts(runs)}",
        "",
        "Sorted by best validation loss (nats per character; bpc is bits per character). "
        "The columns before `params` are the settings that differ between the runs.",
        "",
        to_markdown(table),
        "",
    ]
    note = unfinished_note(runs)
    lines += [note, ""] if note else []
    lines += [f"![{image}]({image})" for image in images]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    return run_command(PROG, lambda arguments: run(parse_args(arguments), wide_console()), argv)


if __name__ == "__main__":
    sys.exit(main())
