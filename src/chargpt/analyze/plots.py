"""Bar and line plots of an analysis, written as PNG files.

Figures are made without pyplot, so no GUI backend or global figure state is involved: saving a
`Figure` renders it with Agg, which works without a display.
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from chargpt.analyze.report import COMPONENT_LABELS, MEMORY_LABELS, ConfigAnalysis
from chargpt.cli import format_bytes
from chargpt.model.parameters import COMPONENTS

MIB = 2**20
GIB = 2**30


def write_plots(analyses: list[ConfigAnalysis], out_dir: Path) -> list[Path]:
    """parameters.png, memory.png and attention_memory.png in out_dir; returns their paths."""
    paths = [out_dir / "parameters.png", out_dir / "memory.png", out_dir / "attention_memory.png"]
    for plot, path in zip((plot_parameters, plot_memory, plot_attention), paths, strict=True):
        plot(analyses).savefig(path, dpi=120, bbox_inches="tight")
    return paths


def _panels(count: int) -> tuple[Figure, list[Axes]]:
    """One panel per config, each with its own scale: the presets differ by orders of magnitude."""
    figure = Figure(figsize=(3.2 * count + 1.5, 4.2), layout="constrained")
    return figure, list(figure.subplots(1, count, squeeze=False)[0])


def _stack(ax: Axes, labels: list[str], parts: dict[str, list[float]], **style) -> None:
    bottom = [0.0] * len(labels)
    for name, values in parts.items():
        if not any(values):
            continue  # e.g. weight copies in fp32: no empty entry in the legend
        ax.bar(labels, values, bottom=bottom, label=name, **style.get(name, {}))
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]


def _legend_right(axes: list[Axes]) -> None:
    """One legend for all panels (they share their series), right of the last panel."""
    handles, labels = axes[0].get_legend_handles_labels()
    axes[-1].legend(handles, labels, loc="center left", bbox_to_anchor=(1, 0.5))


def plot_parameters(analyses: list[ConfigAnalysis]) -> Figure:
    figure, axes = _panels(len(analyses))
    for ax, a in zip(axes, analyses, strict=True):
        counts = [a.tying.tied, a.tying.untied]
        parts = {
            COMPONENT_LABELS[c]: [count.components[c] / 1e6 for count in counts] for c in COMPONENTS
        }
        _stack(ax, ["tied", "untied"], parts)
        ax.set_title(f"{a.name} ({a.shape})\nuntied {a.tying.untied.total / 1e6:.2f}M")
        ax.set_ylabel("parameters (millions)")
    _legend_right(axes)
    figure.suptitle("Parameters by component, tied and untied embeddings")
    return figure


def plot_memory(analyses: list[ConfigAnalysis]) -> Figure:
    figure, axes = _panels(len(analyses))
    bars = ["fused attention", "math path"]
    for ax, a in zip(axes, analyses, strict=True):
        parts = {MEMORY_LABELS[k]: [v / MIB] * 2 for k, v in a.memory_parts().items()}
        parts["T×T attention"] = [0, a.memory.attention_matrices / MIB]
        _stack(ax, bars, parts, **{"T×T attention": {"hatch": "//"}})
        ax.set_ylabel("MiB")
        ax.set_title(f"{a.name}: {format_bytes(a.memory.total)}")
        ax.tick_params(axis="x", labelsize=8)
    _legend_right(axes)
    first = analyses[0]
    figure.suptitle(
        f"Training memory with AdamW (batch {first.batch_size}, context "
        f"{first.config.block_size}, {first.precision})"
    )
    return figure


def plot_attention(analyses: list[ConfigAnalysis]) -> Figure:
    figure = Figure(figsize=(7.5, 5), layout="constrained")
    ax = figure.subplots()
    for a in analyses:
        contexts = list(a.by_context)
        (line,) = ax.plot(
            contexts,
            [a.by_context[t].activation_total / GIB for t in contexts],
            marker="o",
            label=f"{a.name}: activations (fused attention)",
        )
        ax.plot(
            contexts,
            [a.by_context[t].attention_matrices / GIB for t in contexts],
            linestyle="--",
            color=line.get_color(),
            label=f"{a.name}: T×T matrices (naive)",
        )
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:,.0f}"))
    ax.set_xlabel("context length T (tokens)")
    ax.set_ylabel("GiB per training step")
    ax.set_title(f"Attention memory against context (batch {analyses[0].batch_size})")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8)
    return figure
