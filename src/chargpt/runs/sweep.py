"""Hydra's sweep syntax outside a sweep: the jobs its basic sweeper runs, in the order it runs them.

    expand_sweep(["a=1,2", "b=x", "c=3,4"])
    -> [["a=1", "b=x", "c=3"], ["a=1", "b=x", "c=4"], ["a=2", "b=x", "c=3"], ["a=2", "b=x", "c=4"]]

Built on Hydra's public override parser; the basic sweeper's own expansion is internal to Hydra.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ValueType

from chargpt.errors import SettingError


def expand_sweep(arguments: Sequence[str]) -> list[list[str]]:
    """Each job's overrides, numbered as the basic sweeper numbers its jobs.

    The cartesian product of the values in override order; a key given twice keeps its first
    place and its last value. Choice (`a=1,2`, `choice(…)`) and range sweeps expand; `glob(…)`
    (it needs Hydra's config loader) and `interval(…)` (a sampling sweeper's) raise SettingError,
    and a malformed override Hydra's parse error.
    """
    choices: dict[str, list[str]] = {}
    for override in OverridesParser.create().parse_overrides(list(arguments)):
        key = override.get_key_element()
        if not override.is_sweep_override():
            choices[key] = [f"{key}={override.get_value_element_as_str()}"]
        elif override.is_discrete_sweep() and override.value_type != ValueType.GLOB_CHOICE_SWEEP:
            choices[key] = [f"{key}={value}" for value in override.sweep_string_iterator()]
        else:
            raise SettingError(
                f"{override.input_line}: only value lists and range(…) expand outside a sweep"
            )
    return [list(job) for job in itertools.product(*choices.values())]
