"""Analyses of several configs as tables (`chargpt.cli.Table`: rich or markdown) and JSON."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from chargpt.analyze.estimates import (
    MemoryEstimate,
    TyingComparison,
    compare_tying,
    estimate_memory,
    kv_cache_bytes,
)
from chargpt.cli import Table, format_bytes, to_markdown
from chargpt.model import GPTConfig
from chargpt.model.parameters import COMPONENTS

COMPONENT_LABELS = {
    "token_embedding": "token emb",
    "position_embedding": "pos emb",
    "attention": "attention",
    "mlp": "MLP",
    "norms": "norms",
    "head": "head",
}
MEMORY_LABELS = {
    "parameters": "params",
    "gradients": "grads",
    "optimizer": "optimizer",
    "weight_copies": "weight copies",
    "activations": "activations",
}
NAIVE_NOTE = (
    "T×T: one T×T attention matrix per head and layer, the naive figure. SDPA's flash and "
    "memory-efficient kernels never store it; its math path does (not in total). "
    "share: its part of all activations if stored."
)


@dataclass(frozen=True)
class ConfigAnalysis:
    """Everything reported for one config at one batch size and precision."""

    name: str
    config: GPTConfig
    batch_size: int
    precision: str
    optimizer: str
    tying: TyingComparison
    memory: MemoryEstimate  # at the config's block_size
    by_context: dict[int, MemoryEstimate]

    @property
    def shape(self) -> str:
        c = self.config
        return f"{c.n_layer}L {c.n_head}H {c.d_model}C"

    def memory_parts(self) -> dict[str, int]:
        m = self.memory
        return {
            "parameters": m.parameters,
            "gradients": m.gradients,
            "optimizer": m.optimizer,
            "weight_copies": m.weight_copies,
            "activations": m.activation_total,
        }


def analyze_config(
    name: str,
    config: GPTConfig,
    batch_size: int,
    precision: str,
    contexts: list[int],
    optimizer: str = "adamw",
) -> ConfigAnalysis:
    return ConfigAnalysis(
        name=name,
        config=config,
        batch_size=batch_size,
        precision=precision,
        optimizer=optimizer,
        tying=compare_tying(config),
        memory=estimate_memory(config, batch_size, precision=precision, optimizer=optimizer),
        by_context={
            t: estimate_memory(config, batch_size, t, precision, optimizer) for t in contexts
        },
    )


def _table(title: str, columns: list[str], rows: list[list[str]], note: str = "") -> Table:
    """The first column names the row; the figures after it are aligned right."""
    return Table(columns, rows, right=columns[1:], title=title, note=note)


def parameter_table(analyses: list[ConfigAnalysis]) -> Table:
    columns = ["config", "shape", "tying", *COMPONENT_LABELS.values(), "total", "tying saves"]
    rows = []
    for a in analyses:
        for tied, count in ((True, a.tying.tied), (False, a.tying.untied)):
            mark = " ←" if tied == a.config.tie_weights else ""
            saves = f"{a.tying.saving:,} ({a.tying.saving / a.tying.untied.total:.1%})"
            rows.append(
                [a.name, a.shape, ("tied" if tied else "untied") + mark]
                + [f"{count.components[c]:,}" for c in COMPONENTS]
                + [f"{count.total:,}", saves if tied else ""]
            )
    c = analyses[0].config
    return _table(
        f"Parameters by component (vocab {c.vocab_size}, context {c.block_size})",
        columns,
        rows,
        "←: the config's own setting. A tied head shares the token embedding and counts 0.",
    )


def memory_table(analyses: list[ConfigAnalysis]) -> Table:
    first = analyses[0]
    parts = _nonzero_keys([a.memory_parts() for a in analyses])  # no weight copies in fp32
    columns = ["config", *(MEMORY_LABELS[p] for p in parts), "total", "T×T", "share"]
    rows = [
        [a.name]
        + [format_bytes(a.memory_parts()[p]) for p in parts]
        + [
            format_bytes(a.memory.total),
            format_bytes(a.memory.attention_matrices),
            f"{a.memory.attention_share:.1%}",
        ]
        for a in analyses
    ]
    optimizers = "/".join(dict.fromkeys(a.optimizer for a in analyses))
    title = (
        f"Training memory with {optimizers} (batch {first.batch_size}, context "
        f"{first.config.block_size}, {first.precision})"
    )
    return _table(title, columns, rows, NAIVE_NOTE)


def activation_table(analyses: list[ConfigAnalysis]) -> Table:
    parts = _nonzero_keys([a.memory.activations for a in analyses])  # masks only with dropout
    columns = ["config", *(p.replace("_", " ") for p in parts), "total"]
    rows = [
        [a.name]
        + [format_bytes(a.memory.activations[p]) for p in parts]
        + [format_bytes(a.memory.activation_total)]
        for a in analyses
    ]
    return _table("Activations saved for backward, by component", columns, rows)


def context_table(analyses: list[ConfigAnalysis]) -> Table:
    columns = ["context"]
    for a in analyses:
        columns += [f"{a.name} activations", f"{a.name} T×T"]
    rows = []
    for t in analyses[0].by_context:
        row = [f"{t:,}"]
        for a in analyses:
            m = a.by_context[t]
            row += [format_bytes(m.activation_total), format_bytes(m.attention_matrices)]
        rows.append(row)
    title = f"Attention memory against context length (batch {analyses[0].batch_size})"
    return _table(title, columns, rows, NAIVE_NOTE)


def kv_cache_table(analyses: list[ConfigAnalysis]) -> Table:
    columns = ["config", "kv heads", "per sequence", "with n_head kv heads", "saved"]
    rows = []
    for a in analyses:
        own = kv_cache_bytes(a.config)
        full = kv_cache_bytes(replace(a.config, n_kv_head=None))
        rows.append(
            [
                a.name,
                f"{a.config.kv_heads} of {a.config.n_head}",
                format_bytes(own),
                format_bytes(full),
                f"{format_bytes(full - own)} ({1 - own / full:.0%})",
            ]
        )
    return _table(
        "KV cache for generation (fp32, block_size positions per sequence)",
        columns,
        rows,
        "Grouped-query attention (model.n_kv_head < n_head) caches n_kv_head heads of keys "
        "and values per layer instead of n_head; the cache grows with the batch of sequences.",
    )


def _nonzero_keys(dicts: list[dict[str, int]]) -> list[str]:
    return [key for key in dicts[0] if any(d[key] for d in dicts)]


def all_tables(analyses: list[ConfigAnalysis]) -> list[Table]:
    return [
        parameter_table(analyses),
        memory_table(analyses),
        activation_table(analyses),
        context_table(analyses),
        kv_cache_table(analyses),
    ]


def markdown_report(tables: list[Table], images: list[str]) -> str:
    lines = ["# Model analysis", ""]
    for table in tables:
        lines += [f"## {table.title}", "", to_markdown(table)]
        lines += ["", table.note, ""] if table.note else [""]
    lines += [f"![{image}]({image})" for image in images]
    return "\n".join(lines) + "\n"


def to_json(analyses: list[ConfigAnalysis]) -> dict[str, Any]:
    """Every figure in plain numbers: parameter counts, and bytes."""
    return {
        "configs": [
            {
                "name": a.name,
                "model": a.config.to_dict(),
                "batch_size": a.batch_size,
                "precision": a.precision,
                "parameters": {
                    "tied": {**a.tying.tied.components, "total": a.tying.tied.total},
                    "untied": {**a.tying.untied.components, "total": a.tying.untied.total},
                    "tying_saving": a.tying.saving,
                },
                "optimizer": a.optimizer,
                "memory": _memory_json(a.memory),
                "kv_cache_bytes_per_sequence": kv_cache_bytes(a.config),
                "by_context": {str(t): _memory_json(m) for t, m in a.by_context.items()},
            }
            for a in analyses
        ]
    }


def _memory_json(m: MemoryEstimate) -> dict[str, Any]:
    return {
        "parameters": m.parameters,
        "gradients": m.gradients,
        "optimizer": m.optimizer,
        "weight_copies": m.weight_copies,
        "activations": dict(m.activations),
        "activation_total": m.activation_total,
        "total": m.total,
        "attention_matrices": m.attention_matrices,
        "attention_share": m.attention_share,
    }
