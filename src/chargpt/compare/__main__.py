"""Compare runs from their local files: one row per group of seeds with its statistics, plus plots.

    python -m chargpt.compare multirun/2026-11-24/10-00-00.123456   # one sweep
    python -m chargpt.compare multirun/                              # every sweep below it
    python -m chargpt.compare outputs/2026-11-24/09-* --out cmp       # single runs
    chargpt-compare outputs/2026-11-24/09-12-01.491453/wandb         # wandb runs (offline files)
    python -m chargpt.compare SWEEP --best-of optimizer.lr --baseline model.norm_position=pre
    python -m chargpt.compare SWEEP --fit params --x flops

PATH is a run folder, a sweep (multirun) folder, a folder holding either (searched three levels
deep), or a wandb folder or run. Only local files are read: no network, no wandb server.

Runs that differ only in their seed (and in paths and names) form a group, one row of the table,
lowest mean best val loss first: the settings that tell the groups apart, n (the finished runs
with a best val loss), the best val loss as mean ± std over the seeds and the 95 % Student-t
interval of its mean, val bpc, test loss, tokens/s, parameters, and the difference to the
baseline group with its 95 % interval, p-value and test (paired over seeds when both groups ran
the same seeds, else Welch's), marked "within noise" when that interval holds 0. Groups of one
run have no spread ("-").

Options:
  --runs                 show one row per run instead (settings, results, status); compare.md
                         always holds both tables
  --baseline KEY=VALUE   the group the others are compared with (repeat to pick one of several
                         matches); by default the best group. Values as the table shows them.
  --best-of KEY          per variant (the settings other than KEY), keep the group at its best
                         value of KEY (e.g. optimizer.lr: each variant at its own best learning
                         rate); warns where that value is at the edge of the grid tried
  --fit params|tokens|flops
                         fit L = E + A·X^(−alpha) to the groups' mean best val loss against
                         their parameters, mean training tokens or mean training FLOPs; prints
                         E, A, alpha ± standard error and writes fit_<X>.png
  --x step|tokens|flops|time
                         the x axis of the validation curves (default tokens)
  --out DIR              where compare.md, compare.csv, report.html and the plots go: by default
                         the folder given, when it is a single folder of runs (a sweep), else
                         ./comparison
  --no-html              do not write report.html

report.html is the same comparison as one interactive page that opens from disk, no server or
network (plotly's JavaScript is inside): the grouped table, sortable; val-loss curves per group
with their seed band, each run on demand, log y; best val loss against parameters (and the fit);
with --best-of, val loss against that key per variant; per run, its settings that differ from the
baseline, its last sample, and links to its folder, checkpoints and wandb run. Rerun compare to
refresh it while a sweep runs.

compare.md holds the grouped table, then the per-run table (with status: finished, failed with
its error, interrupted, running, incomplete: no run.json, not started: a sweep job still to
come); compare.csv the grouped figures as plain numbers (columns: README, "Comparing runs").
Links to every run's wandb run go to --out/wandb, so `wandb leet OUT/wandb` browses them all.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from rich.console import Console

from chargpt.cli import Table, print_table, run_command, to_markdown, wide_console
from chargpt.compare.discovery import find_runs, holds_runs
from chargpt.compare.group_table import grouped_csv, grouped_table
from chargpt.compare.groups import (
    FIT_FIELDS,
    Group,
    best_of,
    find_baseline,
    fit_points,
    group_runs,
    grouping_keys,
    sort_groups,
)
from chargpt.compare.plots import X_AXES, write_fit_plot, write_plots
from chargpt.compare.report import REPORT_HTML, write_report
from chargpt.compare.stats import MIN_FIT_POINTS, PowerLawFit, fit_power_law
from chargpt.compare.table import (
    comparison_table,
    differing_keys,
    plural,
    sort_runs,
    status_counts,
    unfinished_note,
)
from chargpt.compare.wandb_runs import link_wandb_runs
from chargpt.errors import ChargptError, OneLineArgumentParser
from chargpt.runs.files import write_atomically
from chargpt.runs.read import Run

PROG = "chargpt.compare"
REPORT_FILE = "compare.md"
CSV_FILE = "compare.csv"
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
        help="folder for compare.md, compare.csv and the plots "
        "(default: the sweep given, else ./comparison)",
    )
    parser.add_argument(
        "--runs", action="store_true", help="show one row per run instead of one per group"
    )
    parser.add_argument(
        "--baseline",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="the group to compare with (repeatable); default: the best group",
    )
    parser.add_argument(
        "--best-of",
        metavar="KEY",
        help="per variant, keep the group at its best value of KEY (e.g. optimizer.lr)",
    )
    parser.add_argument(
        "--fit", choices=tuple(FIT_FIELDS), help="fit a power law of best val loss against X"
    )
    parser.add_argument(
        "--x", choices=X_AXES, default="tokens", help="x axis of the curves (default: tokens)"
    )
    parser.add_argument(
        "--no-html", action="store_true", help=f"do not write the interactive {REPORT_HTML}"
    )
    return parser.parse_args(argv)


def default_out(paths: list[Path]) -> Path:
    """The folder of runs when only one is given (a sweep's report sits in the sweep)."""
    return paths[0] if len(paths) == 1 and holds_runs(paths[0]) else DEFAULT_OUT


@dataclass(frozen=True)
class Comparison:
    """What the report shows: the runs, the groups that make the rows and their baseline."""

    runs: list[Run]
    keys: list[str]  # the differing keys: the per-run table's columns
    rows: list[Group]  # one per row; with --best-of, each variant's best group
    row_keys: list[str]  # the grouped table's setting columns
    baseline: Group | None
    best_of: str | None
    warnings: list[str]  # --best-of's edge-of-grid lines


def compare(args: argparse.Namespace) -> Comparison:
    """The runs under the paths, grouped over seeds; a bad option is one ChargptError line."""
    runs = sort_runs(find_runs(args.paths))
    keys = differing_keys(runs)
    rows = sort_groups(group_runs(runs, keys))
    row_keys = grouping_keys(keys)
    warnings: list[str] = []
    if args.best_of:
        chosen = best_of(rows, row_keys, args.best_of)
        rows, warnings = sort_groups(chosen.chosen), chosen.warnings
        row_keys = [key for key in row_keys if key != args.best_of]
    baseline = find_baseline(rows, row_keys, args.baseline)
    return Comparison(runs, keys, rows, row_keys, baseline, args.best_of, warnings)


def run(args: argparse.Namespace, console: Console) -> None:
    found = compare(args)
    groups = grouped_table(found.rows, found.row_keys, found.baseline, found.best_of)
    groups = replace(groups, title=groups_title(found), note=groups_note(found))
    per_run = comparison_table(found.runs, found.keys)
    title = f"{plural(len(found.runs), 'run')}: {status_counts(found.runs)}"
    per_run = replace(per_run, title=title)
    print_table(per_run if args.runs else groups, console)
    out = args.out or default_out(args.paths)
    if out.exists() and not out.is_dir():
        raise ChargptError(f"--out {out}: a file, not a folder; name a folder for the report")
    out.mkdir(parents=True, exist_ok=True)
    images = write_plots(found.rows, out, x=args.x)
    notes = [note] if (note := unfinished_note(found.runs)) else []
    notes += [f"warning: {warning}" for warning in found.warnings]
    notes += [f"note: {line}" for group in found.rows if (line := group.uncounted_note())]
    fit = None
    if args.fit:
        fitted, fit_image, fit = fit_line(found.rows, args.fit, out)
        notes.append(fitted)
        images += [fit_image] if fit_image else []
    for line in notes:
        console.print(line, markup=False, highlight=False)
    write_atomically(
        out / CSV_FILE, grouped_csv(found.rows, found.row_keys, found.baseline, found.best_of)
    )
    made_at = datetime.now()
    report = markdown_report(args.paths, found, groups, per_run, notes, images, made_at)
    write_atomically(out / REPORT_FILE, report)
    written = [REPORT_FILE, CSV_FILE, *(image.name for image in images)]
    if not args.no_html:
        page = write_report(
            found, out, x=args.x, made_at=made_at, fit=fit, fit_x=args.fit, notes=notes
        )
        written.append(page.name)
    console.print(f"Wrote {', '.join(written)} to {out}", markup=False, highlight=False)
    links = link_wandb_runs(found.runs, out / WANDB_LINKS)
    if links:
        count = plural(len(links), "wandb run")
        console.print(f"Browse the {count} together, offline: wandb leet {out / WANDB_LINKS}")


def groups_title(found: Comparison) -> str:
    """`2 groups of 6 runs (6 finished), mean ± std over seeds`."""
    rows = plural(len(found.rows), "group")
    picked = f" (each variant at its best {found.best_of})" if found.best_of else ""
    runs = f"{plural(len(found.runs), 'run')} ({status_counts(found.runs)})"
    return f"{rows}{picked} of {runs}, mean ± std over seeds"


def groups_note(found: Comparison) -> str:
    """What the Δ columns compare with, and how."""
    if found.baseline is None:
        return "No group has a best val loss yet: no baseline to compare with."
    return (
        f"Δ: mean best val loss minus the baseline's ({found.baseline.label}); paired t-test "
        "where both groups ran the same seeds, else Welch's; within noise: its 95% CI holds 0."
    )


def fit_line(rows: list[Group], x: str, out: Path) -> tuple[str, Path | None, PowerLawFit | None]:
    """The fitted power law in one line (or why there is none), its plot and the fit."""
    points = fit_points(rows, x)
    distinct = len({point[0] for point in points})
    if distinct < MIN_FIT_POINTS:
        found = f"needs {MIN_FIT_POINTS} or more distinct {x} values, found {distinct}"
        return f"--fit {x}: {found}; no fit", None, None
    try:
        fit = fit_power_law([p[0] for p in points], [p[1] for p in points])
    except RuntimeError as error:  # curve_fit found no minimum
        return f"--fit {x}: the fit did not converge ({error}); no fit", None, None
    line = f"--fit {x} ({plural(len(points), 'group')}): {fit_formula(fit)}"
    return line, write_fit_plot(points, fit, x, out), fit


def fit_formula(fit: PowerLawFit) -> str:
    """`L = E + A·X^(−alpha): E = 1.23 ± 0.01, A = 45.6 ± 2.1, alpha = 0.31 ± 0.006`."""
    return f"L = E + A·X^(−alpha): {fit.estimates(4, 'inf (undetermined)')}"


def markdown_report(
    paths: list[Path],
    found: Comparison,
    groups: Table,
    per_run: Table,
    notes: list[str],
    images: list[Path],
    made_at: datetime,
) -> str:
    lines = [
        "# Run comparison",
        "",
        f"- compared: {', '.join(f'`{path}`' for path in paths)}",
        f"- on: {made_at.isoformat(sep=' ', timespec='seconds')}",
        f"- runs: {status_counts(found.runs)}",
        f"- baseline: {found.baseline.label if found.baseline else 'none yet'}",
    ]
    if found.best_of:
        lines.append(f"- each variant at its best `{found.best_of}` (`--best-of`)")
    lines += [
        "",
        f"## {groups.title}",
        "",
        "One row per group of runs that differ only in their seed, lowest mean best validation "
        "loss first (nats per character; bpc is bits per character). n counts the runs with a "
        "best val loss; 95% CI is the Student-t interval of the mean. " + groups.note,
        f"The same figures as numbers: `{CSV_FILE}`.",
        "",
        to_markdown(groups),
        "",
        *(f"- {note}" for note in notes),
        "",
        f"## {per_run.title}",
        "",
        "One row per run (single runs, no statistics), sorted by best validation loss. "
        "The columns before `params` are the settings that differ between the runs.",
        "",
        to_markdown(per_run),
        "",
    ]
    lines += [f"![{image.name}]({image.name})" for image in images]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    return run_command(PROG, lambda arguments: run(parse_args(arguments), wide_console()), argv)


if __name__ == "__main__":
    sys.exit(main())
