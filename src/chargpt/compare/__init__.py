"""The compare command, `python -m chargpt.compare PATH...`: runs -> a table, compare.md, plots."""
