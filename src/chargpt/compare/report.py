"""compare's interactive report: `report.html`, one page that opens from disk with no server.

    report.html
      header          when it was made, how many runs finished (rerunning compare refreshes it)
      groups          the grouped table (`grouped_table`) plus each group's statuses, sortable
      curves          val loss, then train loss, against the x axis: per group its mean over
                      seeds and a ±1 std band; each run a thin line, hidden until asked for;
                      linear or log y; buttons switch x (step, tokens, FLOPs, time)
      sizes           mean best val loss against parameters (log x), 95 % CI bars, the fit
      best of         with --best-of KEY: mean best val loss against KEY, one line per variant
      runs            the per-run table, then per run its settings that differ from the
                      baseline's, status, links (folder, checkpoints, wandb) and last sample

The charts are plotly's: its JavaScript is embedded once, every figure's data beside it, so the
page fetches nothing (no CDN, no MathJax). Everything read from run folders (settings, errors,
samples, paths) is HTML-escaped, in the page and in the charts' labels, which plotly reads as
HTML too. Figures are built by functions that return plotly `Figure`s, so tests inspect them.
"""

from __future__ import annotations

import base64
import html
import math
import os
import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
import plotly.offline

from chargpt.cli import Table
from chargpt.compare.group_table import grouped_table
from chargpt.compare.groups import (
    FINISHED,
    FIT_FIELDS,
    Group,
    group_runs,
    is_finite,
    setting_number,
    sort_groups,
    variant_label,
)
from chargpt.compare.plots import (
    X_AXES,
    X_LABELS,
    curve_runs,
    group_colours,
    mean_curve,
    no_x,
    run_curve,
)
from chargpt.compare.stats import PowerLawFit
from chargpt.compare.table import comparison_table, plural, show, status_counts
from chargpt.compare.wandb_runs import find_wandb_runs
from chargpt.runs.files import write_atomically
from chargpt.runs.layout import BEST_CHECKPOINT, CHECKPOINT_DIR, LAST_CHECKPOINT, LOG_FILE
from chargpt.runs.read import Run
from chargpt.runs.variant import is_setting

if TYPE_CHECKING:  # the command imports this module: a runtime import would be circular
    from chargpt.compare.__main__ import Comparison

REPORT_HTML = "report.html"
# No plotly logo; "responsive" refits a figure when the window is resized.
PLOTLY_CONFIG = {"displaylogo": False, "responsive": True}
FIGURE_HEIGHT = 520  # pixels
CURVES_HEIGHT = 760  # the curves' runs legend, below the plot, takes a third of it
LEGEND_WIDTH = 48  # characters before a legend entry wraps
TITLE_WIDTH = 28  # characters of a line of a run legend's group title
BAND_ALPHA = 0.2
LOSS_UNIT = "(nats/char)"
CURVE_NAMES = {"val": "val loss", "train": "train loss"}  # by `plots.CURVES`
CURVE_TITLES = {"val": "Validation loss", "train": "Training loss"}
X_MENU = "x axis"  # the name of the curve figures' x-axis buttons
X_BUTTONS = {"step": "x: step", "tokens": "x: tokens", "flops": "x: FLOPs", "time": "x: time"}
# 1M, 200k rather than 1000000; FLOPs span many decades: 2.5e+12. Else plotly's default, "B".
X_FORMATS = {"tokens": "SI", "params": "SI", "flops": "e"}
BEST_LABEL = f"best val loss {LOSS_UNIT}"
# A run.log line that opens a sample (`[2026-12-02 05:14:37,770][INFO] --- sample at step 10 ---`
# in the file, no prefix on the console) and the line that closes it.
SAMPLE_START = re.compile(r"^(?:\[[^\]]*\]\[[A-Z]+\] )?--- sample at step (\d+) ---$")
SAMPLE_END = "---"
RECORD_START = re.compile(r"^\[\d{4}-\d\d-\d\d [^\]]*\]\[[A-Z]+\] ")  # run.log's next record
MAX_SAMPLE_CHARS = 20_000  # of one sample shown: a runaway sample must not bloat the page


def write_report(
    found: Comparison,
    out: Path,
    *,
    x: str,
    made_at: datetime,
    fit: PowerLawFit | None = None,
    fit_x: str | None = None,
    notes: Sequence[str] = (),
) -> Path:
    """Write `out/report.html` atomically (a browser never sees half a page) and return its path.

    `x`: the curves' x axis (`plots.X_AXES`); `fit`: the power law fitted against `fit_x`
    (`FIT_FIELDS`), drawn over the groups' points; `notes`: lines shown under the table
    (warnings, runs not counted). The best-of plot follows `found.best_of`."""
    path = out / REPORT_HTML
    page = report_html(found, out, x=x, made_at=made_at, fit=fit, fit_x=fit_x, notes=notes)
    write_atomically(path, page)
    return path


def report_html(
    found: Comparison,
    out: Path,
    *,
    x: str,
    made_at: datetime,
    fit: PowerLawFit | None = None,
    fit_x: str | None = None,
    notes: Sequence[str] = (),
) -> str:
    """The whole page as text; `out` is where it goes, which its links are relative to."""
    every_group = sort_groups(group_runs(found.runs, found.keys))  # with --best-of, rows are fewer
    colours = group_colours(found.rows)
    figures = [
        curve_figure(found.rows, x, colours),
        curve_figure(found.rows, x, colours, "train"),
        *loss_figures(found.rows, colours, fit, fit_x),
    ]
    if found.best_of:
        figures.append(best_of_figure(every_group, found.best_of, found.rows))
    body = [
        header_html(found, made_at),
        groups_html(found, notes),
        "<h2>Plots</h2>",
        *(figure_html(figure) for figure in figures),
        runs_html(found, every_group, out),
    ]
    return page_html("Run comparison", "\n".join(body))


# --- the figures ---------------------------------------------------------------------------------


def curve_figure(
    groups: Sequence[Group], x: str, colours: Sequence[tuple], curve: str = "val"
) -> go.Figure:
    """`curve` (`plots.CURVES`: val loss, or train loss) against `x`: per group its mean curve
    (traces with `meta` "mean") and, where it has a spread, its ±1 std band ("band"); each
    run's own curve ("run"), hidden until its legend entry or the "runs shown" button shows it.
    Groups and runs that cannot give `x` are left out. Buttons switch every trace to another x
    axis (`X_AXES`) that some of them can give; `x` is the one shown first."""
    shown = curve_traces(groups, x, colours, curve)
    figure = go.Figure(list(shown.values()))
    runs = [i for i, trace in enumerate(figure.data) if trace.meta == "run"]
    menus = [_y_scale_menu(), _seeds_menu(runs)] if runs else [_y_scale_menu()]
    on_axes = {
        axis: shown if axis == x else curve_traces(groups, axis, colours, curve) for axis in X_AXES
    }
    offered = {axis: traces for axis, traces in on_axes.items() if shown.keys() & traces.keys()}
    if len(offered) > 1:
        menus.append(_x_axis_menu(groups, shown, offered, x))
    title = f"{CURVE_TITLES[curve]}, mean over seeds (band: ±1 std)"
    figure.update_layout(
        _layout(title, X_LABELS[x], f"{CURVE_NAMES[curve]} {LOSS_UNIT}"),
        updatemenus=menus,
        # Groups on the right, runs below the plot: two legends side by side would overlap.
        # Shown even with one entry, which plotly would hide: on an axis only one group can give.
        showlegend=True,
        height=CURVES_HEIGHT,
        legend2={
            "title": {"text": "runs (click to show):"},
            "groupclick": "toggleitem",
            "orientation": "h",
            "x": 0,
            "y": -0.2,
            "yanchor": "top",
        },
    )
    _format_x(figure, x)
    if not figure.data:
        _say(figure, no_x(x, curve))
    return figure


# What a trace of the curve figure shows: (meta, group index, run index or None).
TraceKey = tuple[str, int, int | None]


def curve_traces(
    groups: Sequence[Group], x: str, colours: Sequence[tuple], curve: str = "val"
) -> dict[TraceKey, go.Scatter]:
    """The curve figure's traces on `x`, in drawing order: each group's band and mean, keyed
    ("band" or "mean", group index, None), then each run's, keyed ("run", group index, its
    index in the group). A group or run that cannot give `x` has none."""
    traces: dict[TraceKey, go.Scatter] = {}
    for index, (group, colour) in enumerate(zip(groups, colours, strict=True)):
        for trace in group_traces(group, index, x, colour, curve):
            traces[(trace.meta, index, None)] = trace
    for index, (group, colour) in enumerate(zip(groups, colours, strict=True)):
        for number, run in enumerate(group.runs):
            if (points := run_curve(run, x, curve)) is not None:
                traces[("run", index, number)] = run_trace(
                    run, group, index, points, colour, x, curve
                )
    return traces


def group_traces(
    group: Group, index: int, x: str, colour: tuple, curve: str = "val"
) -> list[go.Scatter]:
    """The group's mean curve and, where its seeds spread, the band around it; one legend entry
    shows and hides both."""
    points = mean_curve(group, x, curve)
    if points is None:
        return []
    xs, means, stds = points
    n = curve_runs(group, x, curve)
    spread = [f" ± {std:.4f}" if math.isfinite(std) else "" for std in stds]  # its 1 std
    mean = go.Scatter(
        x=xs,
        y=means,
        mode="lines+markers",
        name=_mean_name(group, n),
        legendgroup=f"group{index}",
        line={"color": _rgba(colour), "width": 2.5},
        marker={"size": 5},
        # The group's name (its legend entry) from the trace, not repeated at every point.
        text=spread,
        hovertemplate=f"%{{fullData.name}}<br>{CURVE_NAMES[curve]}, mean: %{{y:.4f}}%{{text}}"
        f"<br>{X_LABELS[x]}: %{{x}}<extra></extra>",
        meta="mean",
    )
    if np.isnan(stds).all():  # one run: no spread to draw
        return [mean]
    band = go.Scatter(
        x=np.concatenate([xs, xs[::-1]]),
        y=np.concatenate([means + stds, (means - stds)[::-1]]),
        mode="lines",  # plotly's default would mark every point of the outline
        fill="toself",
        fillcolor=_rgba(colour, BAND_ALPHA),
        line={"width": 0},
        legendgroup=f"group{index}",
        showlegend=False,
        hoverinfo="skip",
        meta="band",
    )
    return [band, mean]


def run_trace(
    run: Run,
    group: Group,
    index: int,
    points: dict[int, tuple[float, float]],
    colour: tuple,
    x: str,
    curve: str = "val",
) -> go.Scatter:
    """One run's curve, thin and hidden (`legendonly`): a click on its entry shows it. Its
    hover text is one string, the same at every point."""
    name = _run_name(run)
    return go.Scatter(
        x=[point[0] for point in points.values()],
        y=[point[1] for point in points.values()],
        mode="lines",
        name=_text(name),
        legend="legend2",
        legendgroup=f"runs{index}",
        legendgrouptitle={"text": _wrapped(_compact_label(group), TITLE_WIDTH)},
        visible="legendonly",
        line={"color": _rgba(colour), "width": 1},
        text=_text(f"{name} · {group.label} · {run.status}"),
        hovertemplate=f"%{{text}}<br>{CURVE_NAMES[curve]}: %{{y:.4f}}"
        f"<br>{X_LABELS[x]}: %{{x}}<extra></extra>",
        meta="run",
    )


def _mean_name(group: Group, n: int) -> str:
    return f"{_wrapped(group.label)} (n={n})"


def _x_axis_menu(
    groups: Sequence[Group],
    shown: dict[TraceKey, go.Scatter],
    offered: dict[str, dict[TraceKey, go.Scatter]],
    x: str,
) -> dict:
    """Buttons that switch the curve figure's x axis: each sets every trace's x, and its y,
    hover and legend name too (a group's mean on another axis may be over other runs or steps),
    precomputed from `offered` (the traces on each axis, `curve_traces`); a trace the figure
    `shown` has but an axis lacks is emptied there (plotly leaves it out of the legend). `x`'s
    button is the one lit first. Arrays are `typed_array`s."""
    buttons = []
    for axis, traces in offered.items():
        update: dict[str, list] = {key: [] for key in ("x", "y", "text", "name", "hovertemplate")}
        for key, trace in shown.items():
            on_axis = traces.get(key)
            if on_axis is None:
                meta, index, _ = key
                name = _mean_name(groups[index], 0) if meta == "mean" else trace.name
                values = [], [], None, name, trace.hovertemplate
            else:
                values = (
                    typed_array(on_axis.x),
                    typed_array(on_axis.y),
                    on_axis.text if isinstance(on_axis.text, str | None) else list(on_axis.text),
                    on_axis.name,
                    on_axis.hovertemplate,
                )
            for column, value in zip(update.values(), values, strict=True):
                column.append(value)
        layout = {
            "xaxis.title.text": _text(X_LABELS[axis]),
            "xaxis.exponentformat": X_FORMATS.get(axis, "B"),
            "xaxis.autorange": True,
            "yaxis.autorange": True,
        }
        buttons.append(
            {"label": X_BUTTONS[axis], "name": axis, "method": "update", "args": [update, layout]}
        )
    return {
        "type": "buttons",
        "name": X_MENU,
        "direction": "left",
        "active": list(offered).index(x),
        "x": 1,
        "xanchor": "right",
        "y": 1.01,
        "yanchor": "bottom",
        "buttons": buttons,
    }


def typed_array(values: Sequence[float]) -> dict | list:
    """`values` as plotly.js's typed-array spec (base64 of float64s), the form plotly.py gives
    the traces' own data: a button's arguments would otherwise go as JSON numbers, about twice
    the size. An empty array as it is."""
    array = np.asarray(values, dtype="<f8")
    if not array.size:
        return []
    return {"dtype": "f8", "bdata": base64.b64encode(array.tobytes()).decode("ascii")}


def loss_figures(
    groups: Sequence[Group], colours: Sequence[tuple], fit: PowerLawFit | None, fit_x: str | None
) -> list[go.Figure]:
    """Best val loss against parameters and, where the fit was against tokens or FLOPs, against
    those too: the fit is drawn where its x axis is."""
    figures = [loss_figure(groups, "params", colours, fit if fit_x == "params" else None)]
    if fit is not None and fit_x is not None and fit_x != "params":
        figures.append(loss_figure(groups, fit_x, colours, fit))
    return figures


def loss_figure(
    groups: Sequence[Group], x: str, colours: Sequence[tuple], fit: PowerLawFit | None = None
) -> go.Figure:
    """Each group's mean best val loss at its mean `x` (`FIT_FIELDS`: params, tokens, flops),
    log x, with the 95 % interval of the mean ("point"), and the fitted power law ("fit")."""
    figure = go.Figure()
    points = []
    for group, colour in zip(groups, colours, strict=True):
        at = group.mean(FIT_FIELDS[x])
        if group.n and at is not None and at > 0:
            figure.add_trace(_point_trace(group, at, colour, x))
            points.append(at)
    if fit is not None and points:
        figure.add_trace(fit_trace(fit, min(points), max(points)))
    title = f"Best validation loss against {X_LABELS[x]} (bars: 95 % CI of the mean)"
    figure.update_layout(_layout(title, X_LABELS[x], BEST_LABEL), updatemenus=[_y_scale_menu()])
    figure.update_xaxes(type="log")
    _format_x(figure, x)
    if not points:
        _say(figure, f"no group has a best val loss and its {X_LABELS[x]} yet")
    return figure


def _point_trace(group: Group, at: float, colour: tuple, x: str) -> go.Scatter:
    summary = group.summary()
    low, high = _error_bar(summary.mean, summary.ci_low, summary.ci_high)
    return go.Scatter(
        x=[at],
        y=[summary.mean],
        mode="markers",
        name=f"{_wrapped(group.label)} (n={summary.n})",
        marker={"color": _rgba(colour), "size": 9},
        error_y={"type": "data", "symmetric": False, "array": [high], "arrayminus": [low]},
        text=[_text(group.label)],
        hovertemplate="%{text}<br>best val loss: %{y:.4f}"
        f"<br>{X_LABELS[x]}: %{{x:.4s}}<extra></extra>",
        meta="point",
    )


def fit_trace(fit: PowerLawFit, smallest: float, largest: float) -> go.Scatter:
    """The fitted L = E + A·X^(−α) across the points, a little beyond either end."""
    grid = np.geomspace(smallest / 1.5, largest * 1.5, 200)
    name = f"fit: L = E + A·X^−α<br>{_text(fit.estimates(3, '∞', 'α'))}"
    return go.Scatter(
        x=grid,
        y=fit.predict(grid),
        mode="lines",
        name=name,
        line={"color": "black", "dash": "dash"},
        hovertemplate="fit: %{y:.4f} at %{x:.4s}<extra></extra>",
        meta="fit",
    )


def best_of_figure(groups: Sequence[Group], key: str, chosen: Sequence[Group]) -> go.Figure:
    """Mean best val loss against `key`, one line per variant (the settings other than `key`),
    95 % CI bars; the value each variant was kept at is a star. Log x where every value is a
    positive number, categories where one is not a number."""
    variants: dict[str, list[Group]] = {}
    for group in groups:
        if group.n:
            variants.setdefault(variant_label(group, key) or "all", []).append(group)
    numbers = {group.settings[key]: setting_number(group.settings[key]) for group in groups}
    numeric = bool(numbers) and None not in numbers.values()
    kept = [group.settings for group in chosen]
    colours = group_colours([members[0] for members in variants.values()])
    figure = go.Figure()
    for (variant, members), colour in zip(variants.items(), colours, strict=True):
        if numeric:
            members = sorted(members, key=lambda group: numbers[group.settings[key]])
        xs = [numbers[g.settings[key]] if numeric else g.settings[key] for g in members]
        starred = [group.settings in kept for group in members]
        figure.add_trace(_variant_trace(variant, members, xs, starred, colour))
    title = f"Best validation loss against {key}, per variant (★: the value kept)"
    figure.update_layout(_layout(title, key, BEST_LABEL), updatemenus=[_y_scale_menu()])
    if numeric and all(value > 0 for value in numbers.values()):
        figure.update_xaxes(type="log")
    elif not numeric:
        figure.update_xaxes(type="category")
    if not variants:
        _say(figure, "no group has a best val loss yet")
    return figure


def _variant_trace(
    variant: str,
    members: Sequence[Group],
    xs: Sequence[float | str],
    starred: Sequence[bool],
    colour: tuple,
) -> go.Scatter:
    summaries = [group.summary() for group in members]
    bars = [_error_bar(s.mean, s.ci_low, s.ci_high) for s in summaries]
    return go.Scatter(
        x=xs,
        y=[summary.mean for summary in summaries],
        mode="lines+markers",
        name=_wrapped(variant),
        line={"color": _rgba(colour)},
        marker={
            "size": [14 if star else 8 for star in starred],
            "symbol": ["star" if star else "circle" for star in starred],
        },
        error_y={
            "type": "data",
            "symmetric": False,
            "array": [high for _, high in bars],
            "arrayminus": [low for low, _ in bars],
        },
        text=[_text(f"{g.label} (n={g.n})") for g in members],
        hovertemplate="%{text}<br>best val loss: %{y:.4f}<extra></extra>",
        meta="variant",
    )


def _layout(title: str, x_title: str, y_title: str) -> dict:
    return {
        "title": {"text": _text(title), "y": 0.98, "yanchor": "top"},
        "xaxis": {"title": {"text": _text(x_title)}},
        "yaxis": {"title": {"text": y_title}},
        "height": FIGURE_HEIGHT,
        "hovermode": "closest",
        "template": "plotly_white",
        "margin": {"t": 100},  # the title, and the buttons just above the plot
    }


def _y_scale_menu() -> dict:
    """Buttons that switch the y axis between linear and log."""
    return {
        "type": "buttons",
        "direction": "left",
        "x": 0,
        "xanchor": "left",
        "y": 1.01,
        "yanchor": "bottom",
        "buttons": [
            {"label": "linear y", "method": "relayout", "args": [{"yaxis.type": "linear"}]},
            {"label": "log y", "method": "relayout", "args": [{"yaxis.type": "log"}]},
        ],
    }


def _seeds_menu(traces: Sequence[int]) -> dict:
    """Buttons that show or hide every run's own curve at once (the legend does one by one)."""
    return {
        "type": "buttons",
        "direction": "left",
        "x": 0.3,
        "xanchor": "left",
        "y": 1.01,
        "yanchor": "bottom",
        "buttons": [
            {
                "label": "runs hidden",
                "method": "restyle",
                "args": [{"visible": "legendonly"}, traces],
            },
            {"label": "runs shown", "method": "restyle", "args": [{"visible": True}, traces]},
        ],
    }


def _format_x(figure: go.Figure, x: str) -> None:
    if x in X_FORMATS:
        figure.update_xaxes(exponentformat=X_FORMATS[x])


def _say(figure: go.Figure, message: str) -> None:
    """An empty figure that says why, rather than a missing one."""
    figure.add_annotation(text=_text(message), showarrow=False, xref="paper", yref="paper")


def _error_bar(mean: float, low: float, high: float) -> tuple[float, float]:
    """The interval as distances below and above the mean; none (0) for one run."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return 0.0, 0.0
    return mean - low, high - mean


def figure_html(figure: go.Figure) -> str:
    """The figure as a div and the script that draws it; plotly.js is on the page once."""
    return pio.to_html(
        figure,
        include_plotlyjs=False,
        full_html=False,
        include_mathjax=False,
        config=PLOTLY_CONFIG,
        default_height=f"{figure.layout.height or FIGURE_HEIGHT}px",
    )


# --- the tables ----------------------------------------------------------------------------------


def groups_table(found: Comparison) -> Table:
    """The grouped table as compare prints it, plus each group's runs by status: a failed or
    unfinished seed shows in its row."""
    table = grouped_table(found.rows, found.row_keys, found.baseline, found.best_of)
    rows = [
        [*row, status_counts(group.runs)] for row, group in zip(table.rows, found.rows, strict=True)
    ]
    return Table([*table.columns, "status"], rows, right=table.right)


def table_html(table: Table, row_classes: Sequence[str] = ()) -> str:
    """A table whose columns sort on a click of their heading (`SORT_SCRIPT`)."""
    head = "".join(f"<th>{_escape(column)}</th>" for column in table.columns)
    classes = [*row_classes, *[""] * (len(table.rows) - len(row_classes))]
    body = []
    for row, row_class in zip(table.rows, classes, strict=True):
        cells = "".join(
            _cell(cell, column in table.right)
            for column, cell in zip(table.columns, row, strict=True)
        )
        body.append(f'<tr class="{_escape(row_class)}">{cells}</tr>')
    return (
        '<div class="scroll"><table class="sortable"><thead><tr>'
        f"{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"
    )


def _cell(text: str, number: bool) -> str:
    """A cell, with the number it sorts by (`data-sort`) where its text starts with one."""
    value = sort_value(text)
    key = "" if value is None else f' data-sort="{value!r}"'
    return (
        f'<td class="num"{key}>{_escape(text)}</td>' if number else f"<td{key}>{_escape(text)}</td>"
    )


DURATION = re.compile(r"^(?:(\d+)h)?\s*(?:(\d+)m)?\s*(?:(\d+(?:\.\d+)?)\s*s)?$")
NUMBER = re.compile(r"^\[?\s*([+-]?(?:\d[\d,]*\.?\d*|\.\d+)(?:e[+-]?\d+)?)\s*([KkMG]?)")
SCALES = {"K": 1e3, "k": 1e3, "M": 1e6, "G": 1e9}


def sort_value(text: str) -> float | None:
    """The number a cell sorts by: a duration (`1m 37s`, `48.6 s`, `2h 01m`) in seconds, else
    its leading number (`2.1 ± 0.1`, `[2.0, 2.2]`, `+0.01`, `1.2K`, `12,345`); None for text."""
    text = text.strip()
    duration = DURATION.match(text)
    if text and duration and any(duration.groups()):
        hours, minutes, seconds = (float(part or 0) for part in duration.groups())
        return hours * 3600 + minutes * 60 + seconds
    number = NUMBER.match(text)
    if number is None:
        return None
    value = float(number.group(1).replace(",", "")) * SCALES.get(number.group(2), 1)
    return value if math.isfinite(value) else None


def _status_class(status: str) -> str:
    """A CSS class per status: `status-failed`, `status-not-started`."""
    return "status-" + re.sub(r"[^a-z]+", "-", status.lower()).strip("-")


# --- the sections --------------------------------------------------------------------------------


def header_html(found: Comparison, made_at: datetime) -> str:
    runs = found.runs
    finished = sum(1 for run in runs if run.status == FINISHED)
    baseline = found.baseline.label if found.baseline else "none yet (no finished run)"
    picked = (
        f"<li>each variant at its best <code>{_escape(found.best_of)}</code></li>"
        if found.best_of
        else ""
    )
    return (
        '<h1>Run comparison</h1><ul class="facts">'
        f"<li>made {_escape(made_at.isoformat(sep=' ', timespec='seconds'))}; rerunning "
        "<code>python -m chargpt.compare</code> refreshes this page</li>"
        f"<li>{finished} of {plural(len(runs), 'run')} finished ({_escape(status_counts(runs))})"
        "</li>"
        f"<li>baseline: {_escape(baseline)}</li>"
        f"{picked}</ul>"
    )


def groups_html(found: Comparison, notes: Sequence[str]) -> str:
    delta = (
        f"Δ: mean best val loss minus the baseline's ({found.baseline.label}); paired t-test "
        "where both groups ran the same seeds, else Welch's; within noise: its 95% CI holds 0."
        if found.baseline
        else "No group has a best val loss yet: no baseline to compare with."
    )
    explained = (
        "One row per group of runs that differ only in their seed, lowest mean best val loss "
        "first (nats per character; bpc: bits per character). n counts the finished runs with a "
        f"best val loss; 95% CI is the Student-t interval of the mean. {delta} "
        "Click a column's heading to sort by it."
    )
    listed = "".join(f"<li>{_escape(note)}</li>" for note in notes)
    return (
        f"<h2>{plural(len(found.rows), 'group')}</h2><p>{_escape(explained)}</p>"
        f"{table_html(groups_table(found))}"
        f"{f'<ul class=notes>{listed}</ul>' if notes else ''}"
    )


def runs_html(found: Comparison, groups: Sequence[Group], out: Path) -> str:
    """The per-run table, then each run's details under its group."""
    table = comparison_table(found.runs, found.keys)
    classes = [_status_class(run.status) for run in found.runs]
    reference = _reference(found, groups)
    sections = [
        f"<h2>{plural(len(found.runs), 'run')}</h2>",
        "<p>One row per run (no statistics), best val loss first; a failed run shows its "
        "error in the status column.</p>",
        table_html(table, classes),
        "<h2>Each run</h2>",
    ]
    for group in groups:
        sections.append(
            f"<h3>{_escape(group.label)} <small>({_escape(status_counts(group.runs))})</small></h3>"
        )
        sections += [run_details_html(run, reference, out) for run in group.runs]
    return "\n".join(sections)


@dataclass(frozen=True)
class Reference:
    """The run every run's settings are compared with, and what it is: `baseline` (a run of
    the baseline group) or `first group` (while no group has a score)."""

    run: Run
    role: str


def _reference(found: Comparison, groups: Sequence[Group]) -> Reference | None:
    """A run of the baseline, else of the first group; one that knows its whole config rather
    than a job not started."""
    group = found.baseline or (groups[0] if groups else None)
    if group is None:
        return None
    runs = group.scored or group.runs
    run = next((run for run in runs if not run.partial), runs[0])
    return Reference(run, "baseline" if found.baseline else "first group")


def run_details_html(run: Run, reference: Reference | None, out: Path) -> str:
    """One run, folded: status, error, settings that differ from `reference`, links, sample."""
    best = f" · best val loss {run.best_val_loss:.4f}" if is_finite(run.best_val_loss) else ""
    parts = [
        f'<details class="{_status_class(run.status)}"><summary><b>{_escape(_run_name(run))}'
        f"</b> · {_escape(run.status)}{best}</summary>"
    ]
    if run.error:
        parts.append(f'<p class="error">{_escape(run.status)}: {_escape(run.error)}</p>')
    parts.append(settings_html(run, reference))
    links = run_links(run, out)
    if links:
        items = "".join(f'<li><a href="{href}">{_escape(text)}</a></li>' for text, href in links)
        parts.append(f'<ul class="links">{items}</ul>')
    sample = last_sample(run.path / LOG_FILE)
    if sample is not None:
        parts.append(f"<p>last sample, at step {sample.step}:</p><pre>{_escape(sample.text)}</pre>")
    parts.append("</details>")
    return "".join(parts)


def settings_html(run: Run, reference: Reference | None) -> str:
    """The settings in which `run` differs from the reference run, as a small table."""
    if reference is None:
        return ""
    name = f"{_escape(_run_name(reference.run))} ({_escape(reference.role)})"
    if run is reference.run:
        return f"<p>settings: every other run's are compared with this one's, {name}</p>"
    rows = settings_difference(run, reference.run)
    if not rows:
        return f"<p>settings: the same as {name}</p>"
    cells = "".join(
        f"<tr><td><code>{_escape(key)}</code></td><td>{_escape(mine)}</td><td>{_escape(theirs)}"
        "</td></tr>"
        for key, mine, theirs in rows
    )
    return (
        f'<table class="settings"><thead><tr><th>setting</th><th>this run</th>'
        f"<th>{name}</th></tr></thead>"
        f"<tbody>{cells}</tbody></table>"
    )


def settings_difference(run: Run, reference: Run) -> list[tuple[str, str, str]]:
    """(key, this run's value, the reference's) for each setting the two do not share, as the
    command line writes values; paths and names are not settings. A job not started knows only
    its overrides: a key it lacks is unknown, not different."""
    keys = dict.fromkeys([*run.settings, *([] if run.partial else reference.settings)])
    rows = []
    for key in keys:
        mine, theirs = show(run.settings.get(key)), show(reference.settings.get(key))
        if is_setting(key) and mine != theirs:
            rows.append((key, mine, theirs))
    return rows


def run_links(run: Run, out: Path) -> list[tuple[str, str]]:
    """(text, relative href) of the run's folder, checkpoints and wandb runs that exist."""
    if not run.path.is_dir():
        return []  # a job not started has no folder yet
    targets = [("folder", run.path)]
    for name in (BEST_CHECKPOINT, LAST_CHECKPOINT):
        checkpoint = run.path / CHECKPOINT_DIR / name
        if checkpoint.is_file():
            targets.append((f"{CHECKPOINT_DIR}/{name}", checkpoint))
    targets += [(f"wandb: {found.name}", found) for found in find_wandb_runs(run.path)]
    return [(text, _href(target, out)) for text, target in targets]


def _href(target: Path, out: Path) -> str:
    """A link that still works when the report and the runs move together; a folder's ends in
    `/`, so that a browser lists it."""
    relative = Path(os.path.relpath(target.resolve(), out.resolve())).as_posix()
    return quote(relative + ("/" if target.is_dir() else ""))


# --- samples from run.log ------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    step: int
    text: str


def last_sample(log: Path) -> Sample | None:
    """The last complete sample that training logged to `log` (run.log).

    A sample is the record that starts `--- sample at step N ---` and ends with a line `---`;
    it runs until the next record (a line with the log's time prefix), so the `---` lines
    between several samples of one step (`callbacks.sample.num_samples`) stay inside it. None
    where the file is missing, unreadable or holds no complete sample. Read line by line, and
    each sample kept to MAX_SAMPLE_CHARS: a long run's log, or a runaway sample, can be large.
    """
    found, step, lines, kept = None, None, [], 0
    try:
        with open(log, encoding="utf-8", errors="replace") as file:
            for line in file:
                line = line.rstrip("\r\n")
                start = SAMPLE_START.match(line)
                if start is not None or RECORD_START.match(line):
                    found = _complete(step, lines) or found
                    step, lines, kept = (int(start.group(1)) if start else None), [], 0
                elif step is not None and line == SAMPLE_END:
                    lines.append(line)  # past the cap too: it says the sample is complete
                elif step is not None and kept < MAX_SAMPLE_CHARS:
                    lines.append(line[: MAX_SAMPLE_CHARS - kept])
                    kept += len(lines[-1]) + 1
    except OSError:
        return None
    return _complete(step, lines) or found


def _complete(step: int | None, lines: list[str]) -> Sample | None:
    """The sample in `lines`, up to its closing `---`; None without one (cut off)."""
    if step is None or SAMPLE_END not in lines:
        return None
    end = len(lines) - 1 - lines[::-1].index(SAMPLE_END)
    return Sample(step, "\n".join(lines[:end]))


# --- the page ------------------------------------------------------------------------------------

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 1.5em auto; max-width: 1800px;
       padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; } h2 { margin-top: 1.8em; border-bottom: 1px solid #ddd; }
h3 { margin: 1.2em 0 0.4em; font-size: 1.05em; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { padding: 3px 8px; border-bottom: 1px solid #e5e5e5; text-align: left;
         white-space: nowrap; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
table.sortable th { cursor: pointer; user-select: none; background: #f5f5f5; }
table.sortable th[aria-sort=ascending]::after { content: " ▲"; }
table.sortable th[aria-sort=descending]::after { content: " ▼"; }
tr.status-failed td, details.status-failed > summary { color: #b00020; }
tr.status-running td, tr.status-not-started td, tr.status-incomplete td,
tr.status-interrupted td { color: #777; }
details { margin: 0.3em 0; padding: 0.2em 0.6em; border-left: 3px solid #ddd; }
details[open] { border-left-color: #888; }
summary { cursor: pointer; }
pre { background: #f7f7f7; padding: 0.6em; white-space: pre-wrap; max-height: 24em;
      overflow: auto; }
.error { color: #b00020; white-space: pre-wrap; }
.notes li { color: #8a5a00; }
"""

# Sorts a table by the column whose heading was clicked: by each cell's number (`data-sort`,
# from `sort_value`) where both have one, as text otherwise; cells without a number (`-`) go
# last either way; a second click reverses; ties keep their order.
SORT_SCRIPT = """
(function () {
  function number(cell) {
    var value = cell.getAttribute("data-sort");
    return value === null ? null : parseFloat(value);
  }
  function compare(a, b, up) {
    var x = number(a), y = number(b), sign = up ? 1 : -1;
    if (x !== null && y !== null) return sign * (x - y);
    if (x !== null) return -1;  // a number before a cell without one, either way
    if (y !== null) return 1;
    return sign * a.textContent.localeCompare(b.textContent);
  }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    var heads = table.tHead.rows[0].cells;
    Array.prototype.forEach.call(heads, function (th, column) {
      th.addEventListener("click", function () {
        var up = th.getAttribute("aria-sort") !== "ascending";
        Array.prototype.forEach.call(heads, function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", up ? "ascending" : "descending");
        var body = table.tBodies[0];
        var rows = Array.prototype.map.call(body.rows, function (row, i) { return [row, i]; });
        rows.sort(function (a, b) {
          return compare(a[0].cells[column], b[0].cells[column], up) || a[1] - b[1];
        });
        rows.forEach(function (pair) { body.appendChild(pair[0]); });
      });
    });
  });
})();
"""


def page_html(title: str, body: str) -> str:
    """The page: plotly.js once in the head, so every figure's script below can draw."""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_escape(title)}</title><style>{STYLE}</style>"
        f'<script type="text/javascript">{plotly.offline.get_plotlyjs()}</script>'
        f"</head><body>\n{body}\n<script>{SORT_SCRIPT}</script></body></html>\n"
    )


# --- text ----------------------------------------------------------------------------------------


def _escape(text: str) -> str:
    return html.escape(str(text), quote=True)


def _text(text: str) -> str:
    """Text for a chart: plotly reads labels as HTML (`<b>`, `<br>`), so `<` and `&` in a
    setting are escaped to show as written."""
    return html.escape(text, quote=False)


def _wrapped(label: str, width: int = LEGEND_WIDTH) -> str:
    """A legend entry that wraps instead of squeezing the plot."""
    return "<br>".join(_text(line) for line in textwrap.wrap(label, width) or [label])


def _compact_label(group: Group) -> str:
    """`norm_position=post, lr=0.003`: the last part of each key, as `plots.short_label` has
    it but whole, since two groups may differ only past where that one cuts."""
    parts = [f"{key.replace('/', '.').rsplit('.', 1)[-1]}={v}" for key, v in group.settings.items()]
    return ", ".join(parts) or group.label


def _run_name(run: Run) -> str:
    """The run's folder below the runs' common folder (`0`, `2026-11-24/09-12-01`)."""
    return run.label or run.path.name


def _rgba(colour: tuple, alpha: float | None = None) -> str:
    """matplotlib's (r, g, b, a) in 0..1, as CSS: the PNG plots' colours."""
    red, green, blue, opacity = (*colour, 1.0)[:4]
    shown = opacity if alpha is None else alpha
    return f"rgba({round(red * 255)}, {round(green * 255)}, {round(blue * 255)}, {shown})"
