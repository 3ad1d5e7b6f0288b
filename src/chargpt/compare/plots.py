"""compare's plots as PNG files, one point or line per group of seeds (`chargpt.compare.groups`).

- `val_loss_vs_<x>.png`: each group's mean validation curve over its seeds, with a band of ±1
  standard deviation, against optimizer steps, training tokens, training FLOPs or training
  seconds (`X_AXES`). Tokens and FLOPs budget runs fairly: a run with a bigger batch takes
  fewer, larger steps, so steps alone would flatter it.
- `best_val_loss_vs_params.png`: each group's mean best validation loss against its parameter
  count, with the 95 % confidence interval of the mean (`chargpt.compare.stats.summarize`).
- `fit_<x>.png` (`write_fit_plot`): group means and the power law fitted to them, log–log.

A group is coloured alike in every plot (its place in the list picks the colour). Figures are
made without pyplot, so no GUI backend or global figure state is involved: saving a `Figure`
renders it with Agg.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullFormatter

from chargpt.compare.groups import FIT_FIELDS, Group
from chargpt.compare.stats import PowerLawFit, summarize
from chargpt.runs.read import Run

X_AXES = ("step", "tokens", "flops", "time")
# The loss curves a run holds, by the name `run_curve` and `mean_curve` take, and their metric.
CURVES: dict[str, Callable[[Run], list[tuple[int, float]]]] = {
    "val": lambda run: run.val_curve,
    "train": lambda run: run.train_curve,
}
CURVE_METRICS = {"val": "val/loss", "train": "train/loss"}
FIT_AXES = tuple(FIT_FIELDS)
X_LABELS = {
    "step": "optimizer step",
    "tokens": "training tokens (characters)",
    "flops": "training FLOPs",
    "time": "training time (s, validation excluded)",
    "params": "parameters",
}
# What the plot says instead of lines when no run can give the x axis, and what to try instead.
NO_X = {
    "step": "no run has a val/loss yet",
    "tokens": "no run knows its tokens per step (run.json, or the batch settings); try --x step",
    "flops": "no run knows its FLOPs per token (run.json); try --x tokens",
    "time": "no run has training times (perf/training_s); try --x step",
}
SIZES_FILE = "best_val_loss_vs_params.png"
BAND = "band: ±1 std over seeds"
LEGEND_WIDTH = 60  # characters
SHORT_WIDTH = 30  # characters of a point's annotation
DPI = 120

Curve = tuple[np.ndarray, np.ndarray, np.ndarray]  # (x, mean loss, std of loss over seeds)


def write_plots(groups: Sequence[Group], out_dir: Path, x: str = "tokens") -> list[Path]:
    """val_loss_vs_<x>.png and best_val_loss_vs_params.png in out_dir; returns their paths."""
    _check_axis(x, X_AXES)
    colours = group_colours(groups)
    paths = [out_dir / f"val_loss_vs_{x}.png", out_dir / SIZES_FILE]
    _save(plot_val_curves(groups, x, colours), paths[0])
    _save(plot_loss_vs_params(groups, colours), paths[1])
    return paths


def write_fit_plot(
    points: Sequence[tuple[float, float, str]], fit: PowerLawFit, x: str, out_dir: Path
) -> Path:
    """fit_<x>.png in out_dir: the points (x, loss, label) and the fitted power law, log–log,
    with the fitted values and their standard errors in the legend; returns its path."""
    _check_axis(x, FIT_AXES)
    shown = [(px, py, label) for px, py, label in points if _positive(px) and _positive(py)]
    figure, ax = _figure()
    if shown:
        _draw_fit(ax, shown, fit)
        _format_x(ax, x)
        _finish(ax, f"Best validation loss against {X_LABELS[x]}: power-law fit")
    else:  # log axes cannot show a zero, negative or NaN point
        _say(ax, "no group has a positive value to fit")
    ax.set_xlabel(X_LABELS[x])
    ax.set_ylabel("best val loss (nats/char)")
    path = out_dir / f"fit_{x}.png"
    _save(figure, path)
    return path


# --- x axes: a run's steps as tokens, FLOPs or training seconds ---------------------------------


def tokens_per_step(run: Run) -> float | None:
    """From run.json's counts; else from the batch settings, since a run killed before it wrote
    run.json still logged its curve. None where neither is known (`trainer.devices: auto`)."""
    if run.tokens_per_step:
        return run.tokens_per_step
    keys = ("data.batch_size", "model.block_size", "trainer.accumulate_grad_batches")
    # One process, one node, unless the settings say otherwise: data.batch_size is per process.
    factors = [run.settings.get(key) for key in keys]
    factors += [run.settings.get(key, 1) for key in ("trainer.devices", "trainer.num_nodes")]
    if all(isinstance(f, int) and not isinstance(f, bool) and f > 0 for f in factors):
        return float(math.prod(factors))
    return None


def x_values(run: Run, steps: Sequence[int], x: str) -> np.ndarray | None:
    """`steps` of `run` on the x axis `x`; None where the run cannot tell (no token count,
    no training times). Times come from perf/training_s, interpolated between logged steps."""
    _check_axis(x, X_AXES)
    at = np.asarray(steps, dtype=float)
    if x == "step":
        return at
    if x == "time":
        return _training_seconds(run, at)
    per_step = tokens_per_step(run)
    if per_step is None:
        return None
    if x == "tokens":
        return at * per_step
    return at * per_step * run.flops_per_token if run.flops_per_token else None


def _training_seconds(run: Run, steps: np.ndarray) -> np.ndarray | None:
    """Training seconds at `steps`: no training has happened at step 0, and a step past the
    last logged time is NaN (dropped by the caller) rather than guessed."""
    if not run.time_curve:
        return None
    timed = dict(sorted(run.time_curve))  # a step logged twice (a resumed run): the later value
    if 0 not in timed:
        timed = {0: 0.0} | timed
    known_steps = np.fromiter(timed, dtype=float)
    seconds = np.interp(steps, known_steps, np.fromiter(timed.values(), dtype=float))
    return np.where(steps <= known_steps[-1], seconds, np.nan)


def no_x(x: str, curve: str = "val") -> str:
    """What a plot of `curve` against `x` says when no run can give it (`NO_X`)."""
    return f"no run has a {CURVE_METRICS[curve]} yet" if x == "step" else NO_X[x]


def run_curve(run: Run, x: str, curve: str = "val") -> dict[int, tuple[float, float]] | None:
    """The run's loss curve (`CURVES`: validation by default, or training) by step: (x, loss);
    None where the run has no such curve or cannot give the x axis. Points with an unknown x
    are left out."""
    if curve not in CURVES:
        raise ValueError(f"curve={curve!r} is not a loss curve; use one of {', '.join(CURVES)}")
    logged = CURVES[curve](run)
    if not logged:
        return None
    losses = dict(sorted(logged))  # a step logged twice: the later value
    xs = x_values(run, list(losses), x)
    if xs is None:
        return None
    points = {s: (float(v), loss) for (s, loss), v in zip(losses.items(), xs, strict=True)}
    return {step: point for step, point in points.items() if math.isfinite(point[0])} or None


def mean_curve(group: Group, x: str, curve: str = "val") -> Curve | None:
    """The group's `curve` (`CURVES`) over seeds: at each step every usable run logged, the
    mean x (the same for all seeds unless x is time), the mean loss and its sample std (ddof=1;
    NaN for a group of one run). None where no run can give x, or the runs share no step."""
    curves = [points for run in plotted_runs(group) if (points := run_curve(run, x, curve))]
    if not curves:
        return None
    shared = sorted(set.intersection(*(set(points) for points in curves)))
    if not shared:
        return None
    # (runs, steps, 2): x and loss of each run at each shared step
    points = np.array([[run[step] for step in shared] for run in curves])
    xs, losses = points[..., 0].mean(axis=0), points[..., 1]
    stds = losses.std(axis=0, ddof=1) if len(curves) > 1 else np.full(len(shared), np.nan)
    return xs, losses.mean(axis=0), stds


def plotted_runs(group: Group) -> list[Run]:
    """The runs the statistics count (finished, `Group.scored`); while none has finished, all of
    them, so a sweep under way shows its progress. A running job's curve would otherwise cut the
    mean short at the steps it has reached."""
    return group.scored or group.runs


def curve_runs(group: Group, x: str, curve: str = "val") -> int:
    """How many of the group's runs its mean `curve` on `x` is made from: its n in the legend."""
    return sum(1 for run in plotted_runs(group) if run_curve(run, x, curve))


# --- the plots -----------------------------------------------------------------------------------


def group_colours(groups: Sequence[Group]) -> list[tuple]:
    """One colour per group, in group order: the same group has the same colour in every plot."""
    palette = colormaps["tab10" if len(groups) <= 10 else "tab20"]
    return [palette(i % palette.N) for i in range(len(groups))]


def plot_val_curves(groups: Sequence[Group], x: str, colours: Sequence[tuple]) -> Figure:
    """Each group's mean validation curve with its ±1 std band; a group that cannot give the
    x axis is left out, and if none can, the plot says so."""
    figure, ax = _figure()
    drawn = 0
    for group, colour in zip(groups, colours, strict=True):
        curve = mean_curve(group, x)
        if curve is None:
            continue
        label = f"{_wrapped(group.label)} (n={curve_runs(group, x)})"
        _draw_curve(ax, curve, colour, label)
        drawn += 1
    ax.set_xlabel(X_LABELS[x])
    ax.set_ylabel("val loss (nats/char)")
    _format_x(ax, x)
    if drawn:
        _finish(ax, "Validation loss, mean over seeds", legend_title=BAND)
    else:
        _say(ax, NO_X[x])
    return figure


def _draw_curve(ax: Axes, curve: Curve, colour: tuple, label: str) -> None:
    xs, means, stds = curve
    ax.plot(xs, means, marker="o", markersize=3, color=colour, label=label)
    if not np.isnan(stds).all():  # a group of one run has no spread to show
        ax.fill_between(xs, means - stds, means + stds, color=colour, alpha=0.2, linewidth=0)


def plot_loss_vs_params(groups: Sequence[Group], colours: Sequence[tuple]) -> Figure:
    """Each group's mean best val loss at its parameter count, with the 95 % interval of the
    mean (none for one run), so a difference smaller than the seeds' noise shows as such."""
    figure, ax = _figure()
    sizes = []
    for group, colour in zip(groups, colours, strict=True):
        runs = [run for run in group.scored if run.num_params]
        if not runs:
            continue
        size = float(np.mean([run.num_params for run in runs]))  # seeds share the size
        _draw_mean(ax, size, [run.best_val_loss for run in runs], colour, group)
        sizes.append(size)
    ax.set_xscale("log")
    ax.set_xlabel(X_LABELS["params"])
    ax.set_ylabel("best val loss (nats/char)")
    if sizes:
        _label_sizes(ax, min(sizes), max(sizes))
        _finish(ax, "Best validation loss against model size (error bars: 95 % CI of the mean)")
    else:
        _say(ax, "no run has a val/loss and a parameter count yet")
    return figure


def _draw_mean(ax: Axes, size: float, losses: list[float], colour: tuple, group: Group) -> None:
    summary = summarize(losses)
    label = f"{_wrapped(group.label)} (n={summary.n})"
    error = None
    if math.isfinite(summary.ci_low):
        error = [[summary.mean - summary.ci_low], [summary.ci_high - summary.mean]]
    ax.errorbar(size, summary.mean, yerr=error, fmt="o", capsize=4, color=colour, label=label)
    ax.annotate(
        _text(short_label(group)),
        (size, summary.mean),
        xytext=(5, 4),
        textcoords="offset points",
        fontsize=7,
    )


def short_label(group: Group) -> str:
    """`norm_position=post, tie_weights=false` for `model.norm_position=post, …`: the last part
    of each key, cut to fit beside a point; the legend has the whole label."""
    text = ", ".join(
        f"{key.replace('/', '.').rsplit('.', 1)[-1]}={value}"
        for key, value in group.settings.items()
    )
    return textwrap.shorten(text or group.label, width=SHORT_WIDTH, placeholder="…")


def _draw_fit(ax: Axes, points: Sequence[tuple[float, float, str]], fit: PowerLawFit) -> None:
    xs = np.array([point[0] for point in points])
    ax.scatter(xs, [point[1] for point in points], color="black", zorder=3, label="group means")
    for px, py, label in points:
        short = textwrap.shorten(label, width=SHORT_WIDTH, placeholder="…")
        ax.annotate(_text(short), (px, py), xytext=(5, 4), textcoords="offset points", fontsize=7)
    low, high = xs.min(), xs.max()
    grid = np.geomspace(low / 1.5, high * 1.5, 200)
    ax.plot(grid, fit.predict(grid), color="tab:red", label=fit_formula(fit))
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(low / 1.5, high * 1.5)
    # Losses span less than a decade: 2, 3, 4 rather than 2×10⁰ on the minor ticks.
    plain = FuncFormatter(lambda value, _: f"{value:g}")
    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_formatter(plain)


def fit_formula(fit: PowerLawFit) -> str:
    """`L = 1.23 + 45.6·X^−0.310` and, below, each fitted value ± its standard error."""
    return f"L = {fit.E:.3g} + {fit.A:.3g}·X^−{fit.alpha:.3g}\n{fit.estimates(3, '∞', 'α')}"


# --- axes and text ------------------------------------------------------------------------------


def compact(value: float, _position: object = None) -> str:
    """1.5M, 200K, 3G rather than 1.5e6: tokens and parameter counts at a glance."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= scale:
            return f"{value / scale:g}{suffix}"
    return f"{value:g}"


def scientific(value: float, _position: object = None) -> str:
    """2.5e12 rather than a shared 1e12 offset in the corner: FLOPs span many decades."""
    if value == 0:
        return "0"
    mantissa, exponent = f"{value:.2e}".split("e")
    return f"{float(mantissa):g}e{int(exponent)}"


X_FORMATTERS: dict[str, Callable[[float, object], str]] = {
    "tokens": compact,
    "flops": scientific,
    "params": compact,
}


def _format_x(ax: Axes, x: str) -> None:
    if x in X_FORMATTERS:
        ax.xaxis.set_major_formatter(FuncFormatter(X_FORMATTERS[x]))


def _label_sizes(ax: Axes, smallest: float, largest: float) -> None:
    """100K, 1M rather than 10^5; within one decade the in-between ticks get labels too."""
    ax.set_xlim(smallest / 1.5, largest * 1.5)
    ax.xaxis.set_major_formatter(FuncFormatter(compact))
    ax.xaxis.set_minor_formatter(
        FuncFormatter(compact) if largest / smallest < 10 else NullFormatter()
    )


def _wrapped(label: str) -> str:
    """Long labels wrap instead of widening the plot."""
    return _text(textwrap.fill(label, width=LEGEND_WIDTH))


def _text(label: str) -> str:
    """A label shown as written: a `$` in a setting (`${model.block_size}`) is not mathtext."""
    return label.replace("$", r"\$")


def _figure() -> tuple[Figure, Axes]:
    figure = Figure(figsize=(11, 5), layout="constrained")
    return figure, figure.subplots()


def _finish(ax: Axes, title: str, legend_title: str | None = None) -> None:
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1), title=legend_title)


def _say(ax: Axes, message: str) -> None:
    """An empty plot that says why, rather than a missing file or an exception."""
    ax.text(0.5, 0.5, message, transform=ax.transAxes, ha="center", wrap=True)


def _save(figure: Figure, path: Path) -> None:
    figure.savefig(path, dpi=DPI, bbox_inches="tight")


def _check_axis(x: str, allowed: Sequence[str]) -> None:
    if x not in allowed:
        raise ValueError(f"x={x!r} is not a plot axis; use one of {', '.join(allowed)}")


def _positive(value: float | None) -> bool:
    return value is not None and math.isfinite(value) and value > 0


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)
