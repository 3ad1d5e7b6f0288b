"""Comparing finished and running runs from their local files: loading, the table, the plots.

The command is `python -m chargpt.compare PATH...` (or `chargpt-compare`).
"""

from chargpt.comparison.discovery import find_runs
from chargpt.comparison.runs import Run
from chargpt.comparison.table import comparison_table, differing_keys, sort_runs

__all__ = ["Run", "comparison_table", "differing_keys", "find_runs", "sort_runs"]
