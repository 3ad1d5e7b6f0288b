"""The grouped table: one row per group of seeds (`chargpt.compare.groups`) with n, each result's
mean ± std over seeds, the 95 % interval of the mean best val loss, and its difference to the
baseline; `grouped_csv` writes the same figures as plain numbers, under `CSV_COLUMNS`.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence

from chargpt.cli import Table
from chargpt.compare.groups import Group
from chargpt.compare.stats import Difference, Summary
from chargpt.compare.table import show
from chargpt.runs.record import ABSENT, decimals, format_count

BASELINE = "baseline"
GROUP_COLUMNS = (
    "n",
    "best val loss",
    "95% CI",
    "val bpc",
    "test loss",
    "tokens/s",
    "params",
    "Δ best val loss",
    "Δ 95% CI",
    "p",
    "test",
    "vs baseline",
)
GROUP_NUMBERS = (*GROUP_COLUMNS[:10],)  # right-aligned
# compare.csv's columns after the grouping keys (and, with --best-of, `best_KEY`): one row per
# group, figures as plain numbers, empty where unknown. README "Comparing runs" describes each.
CSV_COLUMNS = (
    "n",
    "seeds",
    *(
        f"{result}_{figure}"
        for result in ("best_val_loss", "val_bpc", "test_loss")
        for figure in ("mean", "std", "ci_low", "ci_high")
    ),
    "tokens_per_s_mean",
    "num_params",
    "tokens_seen_mean",
    "flops_mean",
    "delta",
    "delta_ci_low",
    "delta_ci_high",
    "p_value",
    "test",
    "within_noise",
)


def grouped_table(
    groups: Sequence[Group],
    keys: Sequence[str],
    baseline: Group | None,
    best_of: str | None = None,
) -> Table:
    """One row per group, in the order given: its values of `keys` (and its best value of
    `best_of`), its statistics, and how it differs from `baseline`."""
    columns = [*keys, *([f"best {best_of}"] if best_of else []), *GROUP_COLUMNS]
    rows = []
    for group in groups:
        chosen = [group.settings[best_of]] if best_of else []
        loss = group.summary()
        cells = [
            str(loss.n),
            _mean_std(loss, 4),
            _interval(loss.ci_low, loss.ci_high, "{:.4f}"),
            _mean_std(group.summary("val_bpc"), 3),
            _mean_std(group.summary("test_loss"), 4),
            _shown(group.mean("tokens_per_s"), decimals(0, grouped=True)),
            _shown(_count(group.mean("num_params")), format_count),
            *_versus(group, baseline),
        ]
        rows.append([*(group.settings[key] for key in keys), *chosen, *cells])
    return Table(columns, rows, right=GROUP_NUMBERS)


def _versus(group: Group, baseline: Group | None) -> list[str]:
    """Δ, its interval, p, the test and the verdict; the baseline row says so."""
    if group is baseline:
        return ["", "", "", "", BASELINE]
    found = group.difference_to(baseline) if baseline is not None else None
    if found is None:
        return [ABSENT] * 5
    verdict = {None: ABSENT, True: "within noise"}.get(found.within_noise)
    if verdict is None:
        verdict = "better" if found.delta < 0 else "worse"  # lower loss is better
    return [
        f"{found.delta:+.4f}",
        _interval(found.ci_low, found.ci_high, "{:+.4f}"),
        _shown(found.p_value, "{:.2g}".format),
        _test_name(found, ABSENT),
        verdict,
    ]


def _mean_std(summary: Summary, digits: int) -> str:
    """`2.1333 ± 0.1528`; `2.1000 ± -` for one run; `-` for none."""
    if not summary.n:
        return ABSENT
    spread = _shown(summary.std, decimals(digits))
    return f"{summary.mean:.{digits}f} ± {spread}"


def _interval(low: float, high: float, spec: str) -> str:
    if math.isnan(low) or math.isnan(high):
        return ABSENT
    return f"[{spec.format(low)}, {spec.format(high)}]"


def _shown(value: float | None, formatter) -> str:
    return ABSENT if value is None or math.isnan(value) else formatter(value)


def grouped_csv(
    groups: Sequence[Group],
    keys: Sequence[str],
    baseline: Group | None,
    best_of: str | None = None,
) -> str:
    """compare.csv: the grouped table's figures as plain numbers (empty where unknown)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*keys, *([f"best_{best_of}"] if best_of else []), *CSV_COLUMNS])
    for group in groups:
        chosen = [group.settings[best_of]] if best_of else []
        figures = [
            *_csv_summary(group.summary()),
            *_csv_summary(group.summary("val_bpc")),
            *_csv_summary(group.summary("test_loss")),
            _csv_number(group.mean("tokens_per_s")),
            _csv_number(_count(group.mean("num_params"))),
            _csv_number(group.mean("tokens_seen")),
            _csv_number(group.mean("flops")),
            *_csv_versus(group, baseline),
        ]
        seeds = " ".join(sorted((show(seed) for seed in group.scored_seeds), key=_seed_order))
        writer.writerow([*(group.settings[key] for key in keys), *chosen, group.n, seeds, *figures])
    return buffer.getvalue()


def _count(mean: float | None) -> int | None:
    """A parameter count: the seeds of one group share it, so their mean is a whole number."""
    return None if mean is None else round(mean)


def _csv_summary(summary: Summary) -> list[str]:
    return [_csv_number(v) for v in (summary.mean, summary.std, summary.ci_low, summary.ci_high)]


def _csv_versus(group: Group, baseline: Group | None) -> list[str]:
    """delta, its interval, p_value, test (`baseline` on the baseline's row) and within_noise."""
    if group is baseline:
        return ["", "", "", "", BASELINE, ""]
    found: Difference | None = group.difference_to(baseline) if baseline is not None else None
    if found is None:
        return [""] * 6
    numbers = (found.delta, found.ci_low, found.ci_high, found.p_value)
    noise = {None: "", True: "true", False: "false"}[found.within_noise]
    return [*map(_csv_number, numbers), _test_name(found, ""), noise]


def _test_name(found: Difference, absent: str) -> str:
    """The test that gave the p-value; none ran where a group has a single run."""
    return absent if math.isnan(found.p_value) else found.test


def _csv_number(value: float | None) -> str:
    """A figure as Python writes it (round-trips exactly); empty when unknown."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    return repr(value) if isinstance(value, float) else str(value)


def _seed_order(seed: str) -> tuple[int, float | str]:
    """1 2 10: seeds that are numbers in numeric order, the rest after them."""
    try:
        return (0, float(seed))
    except ValueError:
        return (1, seed)
