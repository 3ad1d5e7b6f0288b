"""Runs grouped by their settings: the runs of one variant that differ only in `seed`.

A sweep over `seed=1,2,3` makes three runs of each variant; compare shows them as one row with
n, mean, spread and confidence interval (`chargpt.compare.stats`). The grouping keys are the
differing keys (`chargpt.compare.table.differing_keys`, which already ignores paths and names)
less the seed. On top of the groups: the baseline the others are compared with (`--baseline`),
each variant at its best value of one key (`--best-of optimizer.lr`), and the points of a
power-law fit (`--fit`).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from chargpt.compare.stats import Difference, Summary, difference, summarize
from chargpt.compare.table import show
from chargpt.errors import ChargptError
from chargpt.runs.read import Run
from chargpt.runs.variant import SEED_KEYS

SEED = "seed"
FINISHED = "finished"
# What --fit puts on the x axis: the `Results` field of each choice.
FIT_FIELDS = {"params": "num_params", "tokens": "tokens_seen", "flops": "flops"}
SHOWN_MATCHES = 3  # groups an ambiguous --baseline lists


@dataclass
class Group:
    """One variant: its values of the grouping keys (shown as on the command line) and its runs."""

    settings: dict[str, str]
    runs: list[Run] = field(default_factory=list)

    @property
    def label(self) -> str:
        """`model.norm_position=post, model.tie_weights=false`; the run's label for a lone run
        with no differing keys."""
        text = ", ".join(f"{key}={value}" for key, value in self.settings.items())
        return text or (self.runs[0].label if len(self.runs) == 1 else "all runs")

    @property
    def seeds(self) -> list[object]:
        """Each run's seed, in run order (None where a run does not know its seed)."""
        return [run.settings.get(SEED) for run in self.runs]

    @property
    def scored(self) -> list[Run]:
        """The finished runs with a best val loss: those the statistics count (n). A running
        job's best so far, or a failed one's, is not its variant's result; the per-run table
        (`--runs`) still shows them."""
        return [run for run in self.runs if run.status == FINISHED and is_finite(run.best_val_loss)]

    @property
    def scored_seeds(self) -> list[object]:
        """The seeds of the scored runs, in their order: what pairs runs across groups."""
        return [run.settings.get(SEED) for run in self.scored]

    @property
    def n(self) -> int:
        return len(self.scored)

    @property
    def complete(self) -> bool:
        """Every run finished with a best val loss: none failed, diverged or is still going."""
        return self.n == len(self.runs)

    def uncounted_note(self) -> str | None:
        """`model.norm_position=post: 1 of 3 runs not counted (1 failed)`, where runs are left
        out of the group's figures; a failed seed is part of what a setting does."""
        if self.complete:
            return None
        left = [run for run in self.runs if run not in self.scored]
        reasons = Counter(run.status if run.status != FINISHED else "no val loss" for run in left)
        why = ", ".join(f"{count} {reason}" for reason, count in reasons.items())
        return (
            f"{self.label}: {len(left)} of {len(self.runs)} runs not counted ({why}); "
            f"its figures are over the other {self.n}"
        )

    def values(self, name: str) -> list[float]:
        """The scored runs' values of the result `name` (`Results`), where known."""
        found = (getattr(run, name) for run in self.scored)
        return [float(value) for value in found if is_finite(value)]

    def summary(self, name: str = "best_val_loss") -> Summary:
        """n, mean, std and 95 % interval of a result over the scored runs."""
        return summarize(self.values(name))

    def mean(self, name: str) -> float | None:
        """The mean of a result over the scored runs that know it; None where none does."""
        values = self.values(name)
        return sum(values) / len(values) if values else None

    def difference_to(self, baseline: Group) -> Difference | None:
        """mean best val loss minus the baseline's, paired over seeds where both ran the same
        ones; None where either group has no score."""
        if not self.n or not baseline.n:
            return None
        return difference(
            self.values("best_val_loss"),
            baseline.values("best_val_loss"),
            self.scored_seeds,
            baseline.scored_seeds,
        )


def grouping_keys(keys: Sequence[str]) -> list[str]:
    """The differing keys that define a variant: all but the seed."""
    return [key for key in keys if key not in SEED_KEYS]


def group_runs(runs: Sequence[Run], keys: Sequence[str]) -> list[Group]:
    """The runs by their values of `keys` (seed excluded), groups and runs in first-seen order."""
    variant_keys = grouping_keys(keys)
    groups: dict[tuple[str, ...], Group] = {}
    for run in runs:
        values = tuple(show(run.settings.get(key)) for key in variant_keys)
        group = groups.setdefault(values, Group(dict(zip(variant_keys, values, strict=True))))
        group.runs.append(run)
    return list(groups.values())


def sort_groups(groups: Sequence[Group]) -> list[Group]:
    """Lowest mean best val loss first; groups without a score last, in their order."""
    scored = sorted((g for g in groups if g.n), key=lambda g: g.summary().mean)
    return scored + [group for group in groups if not group.n]


# --- the baseline ----------------------------------------------------------------------------


def find_baseline(
    groups: Sequence[Group], keys: Sequence[str], wanted: Sequence[str] = ()
) -> Group | None:
    """The group every other is compared with: the one whose `keys` have the values asked for
    (`KEY=VALUE`, as `show` writes them), by default the best one (None while no group has a
    score). ChargptError in one line for a request that is not KEY=VALUE, names no key of
    `keys`, or matches no group or several."""
    if not wanted:
        best = sort_groups(groups)[0] if groups else None
        return best if best is not None and best.n else None
    pairs = [_parse_setting(text, keys, "--baseline") for text in wanted]
    asked = dict(pairs)
    if len(asked) < len(pairs):
        twice = next(key for key, _ in pairs if [k for k, _ in pairs].count(key) > 1)
        raise ChargptError(f"--baseline names {twice} twice; give each KEY once")
    spec = " ".join(f"--baseline {key}={value}" for key, value in asked.items())
    matches = [g for g in groups if all(g.settings[k] == v for k, v in asked.items())]
    if not matches:
        present = dict.fromkeys(
            " ".join(f"{key}={group.settings[key]}" for key in asked) for group in groups
        )
        raise ChargptError(f"{spec} matches no group; the groups have: {'; '.join(present)}")
    if len(matches) > 1:
        others = [key for key in keys if key not in asked]
        shown = "; ".join(g.label for g in matches[:SHOWN_MATCHES])
        more = "; …" if len(matches) > SHOWN_MATCHES else ""
        raise ChargptError(
            f"{spec} matches {len(matches)} groups ({shown}{more}); "
            f"add another --baseline KEY=VALUE to pick one (KEY among: {', '.join(others)})"
        )
    (baseline,) = matches
    if not baseline.n:
        raise ChargptError(
            f"{spec}: the group {baseline.label} has no finished run with a best val loss yet"
        )
    return baseline


def _parse_setting(text: str, keys: Sequence[str], option: str) -> tuple[str, str]:
    key, equals, value = text.partition("=")
    if not equals or not key:
        raise ChargptError(f"{option} {text}: expected KEY=VALUE, e.g. {option} {_example(keys)}")
    if key not in keys:
        raise ChargptError(f"{option} {text}: {_not_a_key(key, keys, 'differ between the groups')}")
    return key, value


def _example(keys: Sequence[str]) -> str:
    return f"{keys[0]}=VALUE" if keys else "model.norm_position=pre"


def _not_a_key(key: str, keys: Sequence[str], differ: str) -> str:
    """Why `key` cannot tell groups apart, and the keys that can."""
    choose = (
        f"choose one of: {', '.join(keys)}" if keys else "no setting does: all runs are one group"
    )
    if key in SEED_KEYS:
        return f"runs that differ only in {key} form one group (its mean); {choose}"
    return f"{key} does not {differ}; {choose}"


# --- each variant at its best value of one key ------------------------------------------------


@dataclass(frozen=True)
class BestOf:
    """Per variant (a group's settings less `key`), the group with the lowest mean best val
    loss, and a warning for each variant whose best value is at the edge of what it tried."""

    key: str
    chosen: list[Group]
    warnings: list[str]


def best_of(groups: Sequence[Group], keys: Sequence[str], key: str) -> BestOf:
    """Each variant at its best value of `key` (a grouping key, one of `keys`)."""
    if key not in keys:
        raise ChargptError(f"--best-of {key}: {_not_a_key(key, keys, 'vary between the runs')}")
    variants: dict[tuple[str, ...], list[Group]] = {}
    for group in groups:
        rest = tuple(value for name, value in group.settings.items() if name != key)
        variants.setdefault(rest, []).append(group)
    chosen, warnings = [], []
    for members in variants.values():
        # A value at which some seeds failed (diverged) or are not done is not preferred over
        # one whose every seed finished: its mean is over the survivors.
        best = sort_groups([g for g in members if g.complete])
        best = (best or sort_groups(members))[0]
        passed_over = [g for g in sort_groups(members) if g.n and not g.complete]
        if (
            best.complete
            and passed_over
            and passed_over[0].mean("best_val_loss") < best.mean("best_val_loss")
        ):
            warnings.append(
                f"{key}={passed_over[0].settings[key]} for {variant_label(best, key) or 'all'} "
                f"has a lower mean, over {passed_over[0].n} of {len(passed_over[0].runs)} runs "
                f"(the rest failed or are not done); chose {key}={best.settings[key]}, whose "
                "every run finished"
            )
        chosen.append(best)
        warning = _edge_warning(best, members, key)
        if warning:
            warnings.append(warning)
    return BestOf(key, chosen, warnings)


def variant_label(group: Group, key: str) -> str:
    """The group's settings less `key`: `model.norm_position=post`."""
    return ", ".join(f"{name}={value}" for name, value in group.settings.items() if name != key)


def _edge_warning(best: Group, members: Sequence[Group], key: str) -> str | None:
    """A line when the variant's best value of a numeric `key` is its smallest or largest
    tried (by a scored group): the best may lie beyond the grid."""
    tried = {g.settings[key]: setting_number(g.settings[key]) for g in members if g.n}
    if not best.n or None in tried.values():
        return None  # nothing scored, or values without an order (pre, post)
    ordered = sorted(tried, key=lambda value: tried[value])
    value = best.settings[key]
    if value not in (ordered[0], ordered[-1]):
        return None
    variant = variant_label(best, key)
    where = f" for {variant}" if variant else ""
    grid = f"{ordered[0]}–{ordered[-1]}" if len(ordered) > 1 else f"only {value} tried"
    return f"best {key}={value}{where} is at the edge of the grid ({grid}): widen the sweep"


def setting_number(text: str) -> float | None:
    """A setting's value as a finite number (`0.002`), None for any other value."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


# --- a power-law fit's points -------------------------------------------------------------------


def fit_points(groups: Sequence[Group], x: str) -> list[tuple[float, float, str]]:
    """(X, mean best val loss, label) of each group that has both; X per `FIT_FIELDS`: the
    group's parameters, mean tokens seen or mean FLOPs."""
    points = []
    for group in groups:
        value = group.mean(FIT_FIELDS[x])
        if group.n and value is not None and value > 0:
            points.append((value, group.summary().mean, group.label))
    return points


def is_finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
