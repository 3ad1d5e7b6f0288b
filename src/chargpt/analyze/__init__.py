"""Sizing a GPT config: parameters by component, tying, training memory (pure computation).

The command that prints and plots these is `python -m chargpt.analyze`.
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

__all__ = [
    "COMPONENTS",
    "PRECISIONS",
    "MemoryEstimate",
    "ParameterCount",
    "TyingComparison",
    "compare_tying",
    "count_parameters",
    "estimate_memory",
]
