"""Two plots of a comparison as PNG files: val loss against step, best val loss against size.

Runs are coloured by their values of the differing keys (one colour per combination, named in
the legend); without differing keys, by run. Figures are made without pyplot, so no GUI backend
or global figure state is involved: saving a `Figure` renders it with Agg.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullFormatter

from chargpt.compare.table import show
from chargpt.runs.read import Run

CURVES_FILE = "val_loss_vs_step.png"
SIZES_FILE = "best_val_loss_vs_params.png"
LEGEND_WIDTH = 60  # characters


def write_plots(runs: Sequence[Run], keys: Sequence[str], out_dir: Path) -> list[Path]:
    """val_loss_vs_step.png and best_val_loss_vs_params.png in out_dir; returns their paths."""
    colours = combination_colours(runs, keys)
    paths = [out_dir / CURVES_FILE, out_dir / SIZES_FILE]
    for plot, path in zip((plot_val_curves, plot_loss_vs_params), paths, strict=True):
        plot(runs, keys, colours).savefig(path, dpi=120, bbox_inches="tight")
    return paths


def combination(run: Run, keys: Sequence[str]) -> str:
    """`model/size=tiny, model.norm_position=pre`; the run's label where no key differs."""
    text = ", ".join(f"{key}={show(run.settings.get(key))}" for key in keys) or run.label
    return textwrap.fill(text, width=LEGEND_WIDTH)  # long labels wrap instead of widening the plot


def combination_colours(runs: Sequence[Run], keys: Sequence[str]) -> dict[str, tuple]:
    names = list(dict.fromkeys(combination(run, keys) for run in runs))
    palette = colormaps["tab10" if len(names) <= 10 else "tab20"]
    return {name: palette(i % palette.N) for i, name in enumerate(names)}


def plot_val_curves(runs: Sequence[Run], keys: Sequence[str], colours: dict) -> Figure:
    figure, ax = _figure()
    named: set[str] = set()
    for run in runs:
        if not run.val_curve:
            continue
        name = combination(run, keys)
        steps, losses = zip(*sorted(run.val_curve), strict=True)
        label = name if name not in named else "_nolegend_"  # one entry per combination
        ax.plot(steps, losses, marker="o", markersize=3, color=colours[name], label=label)
        named.add(name)
    ax.set_xlabel("step")
    ax.set_ylabel("val loss (nats/char)")
    ax.set_title("Validation loss")
    _finish(ax, bool(named))
    return figure


def plot_loss_vs_params(runs: Sequence[Run], keys: Sequence[str], colours: dict) -> Figure:
    figure, ax = _figure()
    named: set[str] = set()
    sizes = [run.num_params for run in runs if run.best_val_loss is not None and run.num_params]
    for run in runs:
        if run.best_val_loss is None or not run.num_params:
            continue
        name = combination(run, keys)
        label = name if name not in named else "_nolegend_"
        ax.scatter(run.num_params, run.best_val_loss, color=colours[name], label=label)
        point = (run.num_params, run.best_val_loss)
        ax.annotate(run.label, point, xytext=(4, 4), textcoords="offset points", fontsize=7)
        named.add(name)
    ax.set_xscale("log")
    if sizes:
        _label_sizes(ax, min(sizes), max(sizes))
    ax.set_xlabel("parameters")
    ax.set_ylabel("best val loss (nats/char)")
    ax.set_title("Best validation loss against model size")
    _finish(ax, bool(named))
    return figure


def _label_sizes(ax: Axes, smallest: int, largest: int) -> None:
    """100K, 1M rather than 10^5; within one decade the in-between ticks get labels too."""
    ax.set_xlim(smallest / 1.5, largest * 1.5)
    compact = FuncFormatter(lambda x, _: f"{x / 1e6:g}M" if x >= 1e6 else f"{x / 1e3:g}K")
    ax.xaxis.set_major_formatter(compact)
    ax.xaxis.set_minor_formatter(compact if largest / smallest < 10 else NullFormatter())


def _figure() -> tuple[Figure, Axes]:
    figure = Figure(figsize=(11, 5), layout="constrained")
    return figure, figure.subplots()


def _finish(ax: Axes, has_data: bool) -> None:
    if not has_data:
        ax.text(0.5, 0.5, "no run has a val/loss yet", transform=ax.transAxes, ha="center")
        return
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1))
