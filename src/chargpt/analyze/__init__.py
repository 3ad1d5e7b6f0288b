"""Sizing a GPT config: parameters by component, tying, training memory (pure computation);
and looking inside a model: its hidden states and attention patterns (`inspect_model`).

The command that prints and plots the sizes is `python -m chargpt.analyze`.
"""

from chargpt.analyze.estimates import (
    COMPONENTS,
    PRECISIONS,
    MemoryEstimate,
    ParameterCount,
    TyingComparison,
    compare_tying,
    count_parameters,
    estimate_memory,
)
from chargpt.analyze.internals import Internals, inspect_model

__all__ = [
    "COMPONENTS",
    "PRECISIONS",
    "Internals",
    "MemoryEstimate",
    "ParameterCount",
    "TyingComparison",
    "compare_tying",
    "count_parameters",
    "estimate_memory",
    "inspect_model",
]
