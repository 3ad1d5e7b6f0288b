"""Groups of seeds: what makes a variant, its statistics, the baseline, best-of and fit points."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from chargpt.compare.groups import (
    best_of,
    find_baseline,
    fit_points,
    group_runs,
    grouping_keys,
    sort_groups,
)
from chargpt.compare.stats import PAIRED, WELCH
from chargpt.compare.table import differing_keys
from chargpt.errors import ChargptError
from chargpt.runs.read import Run


def make_run(seed: int, loss: float | None, **settings) -> Run:
    """A finished run (loss None: one without a val loss yet) with its per-run paths and names."""
    name = ",".join(f"{key}={value}" for key, value in settings.items())
    path = f"multirun/sweep/{name}-{seed}"
    run_settings = {
        "seed": seed,
        "paths.output_dir": path,
        "hydra.run.dir": path,
        "logger.wandb.name": f"{name},seed={seed}",
        "callbacks.checkpoint.dirpath": f"{path}/checkpoints",
        "trainer.default_root_dir": path,
    } | {key.replace("__", "."): value for key, value in settings.items()}
    run = Run(
        path=Path(path),
        status="finished" if loss is not None else "running",
        settings=run_settings,
        overridden=[key.replace("__", ".") for key in settings] + ["seed"],
        label=f"{name}-{seed}",
        num_params=1000,
    )
    run.set_best_val_loss(loss)
    return run


def groups_of(runs):
    keys = differing_keys(runs)
    return sort_groups(group_runs(runs, keys)), grouping_keys(keys)


def test_runs_that_differ_only_in_seed_paths_and_names_are_one_group():
    runs = [
        make_run(seed, loss, model__norm_position=position)
        for position, losses in (("pre", (2.0, 2.1, 2.3)), ("post", (2.2, 2.3, 2.4)))
        for seed, loss in zip((1, 2, 3), losses, strict=True)
    ]
    groups, keys = groups_of(runs)
    assert keys == ["model.norm_position"]
    assert [group.settings for group in groups] == [
        {"model.norm_position": "pre"},
        {"model.norm_position": "post"},
    ]
    assert [group.seeds for group in groups] == [[1, 2, 3], [1, 2, 3]]
    assert groups[0].label == "model.norm_position=pre"


def test_a_group_counts_only_the_runs_with_a_best_val_loss():
    runs = [make_run(1, 2.0, x=1), make_run(2, 2.1, x=1), make_run(3, None, x=1)]
    (group,) = group_runs(runs, ["seed"])
    assert len(group.runs) == 3 and group.n == 2 and group.scored_seeds == [1, 2]
    summary = group.summary()
    assert summary.mean == pytest.approx(2.05)
    assert summary.std == pytest.approx(np.std([2.0, 2.1], ddof=1))


def test_groups_are_compared_pairwise_only_over_the_same_seeds():
    runs = [make_run(s, 2.0 + 0.1 * s, v="a") for s in (1, 2, 3)]
    runs += [make_run(s, 2.2 + 0.12 * s, v="b") for s in (1, 2, 3)]
    runs += [make_run(s, 2.2 + 0.1 * s, v="c") for s in (4, 5, 6)]
    a, b, c = sorted(groups_of(runs)[0], key=lambda group: group.settings["v"])
    paired, welch = b.difference_to(a), c.difference_to(a)
    assert paired.test == PAIRED
    assert paired.p_value == pytest.approx(
        stats.ttest_rel([2.32, 2.44, 2.56], [2.1, 2.2, 2.3]).pvalue
    )
    assert welch.test == WELCH
    expected = stats.ttest_ind([2.6, 2.7, 2.8], [2.1, 2.2, 2.3], equal_var=False).pvalue
    assert welch.p_value == pytest.approx(expected)


def sweep(losses: dict[tuple[str, float], float]) -> list[Run]:
    """Two seeds per (norm_position, lr), losses 0.01 apart."""
    return [
        make_run(seed, loss + 0.01 * seed, model__norm_position=position, optimizer__lr=lr)
        for (position, lr), loss in losses.items()
        for seed in (1, 2)
    ]


LR_SWEEP = {
    ("pre", 0.001): 2.3,
    ("pre", 0.002): 2.1,
    ("pre", 0.004): 2.2,
    ("post", 0.001): 2.5,
    ("post", 0.002): 2.3,
    ("post", 0.004): 2.2,  # post's best is its largest lr: the grid ends too soon
}


def test_best_of_keeps_each_variant_at_its_own_best_value_and_warns_at_the_grid_edge():
    groups, keys = groups_of(sweep(LR_SWEEP))
    chosen = best_of(groups, keys, "optimizer.lr")
    assert [g.settings for g in sort_groups(chosen.chosen)] == [
        {"model.norm_position": "pre", "optimizer.lr": "0.002"},
        {"model.norm_position": "post", "optimizer.lr": "0.004"},
    ]
    assert chosen.warnings == [
        "best optimizer.lr=0.004 for model.norm_position=post is at the edge of the grid "
        "(0.001–0.004): widen the sweep"
    ]


def test_best_of_a_setting_without_order_has_no_edge():
    groups, keys = groups_of(sweep(LR_SWEEP))
    chosen = best_of(groups, keys, "model.norm_position")
    assert {g.settings["model.norm_position"] for g in chosen.chosen} == {"pre"}
    assert chosen.warnings == []


def test_best_of_a_key_that_does_not_vary_is_one_line_naming_those_that_do():
    groups, keys = groups_of(sweep(LR_SWEEP))
    with pytest.raises(ChargptError) as error:
        best_of(groups, keys, "model.n_layer")
    assert str(error.value) == (
        "--best-of model.n_layer: model.n_layer does not vary between the runs; "
        "choose one of: model.norm_position, optimizer.lr"
    )


def test_the_default_baseline_is_the_best_group_and_one_can_be_chosen():
    groups, keys = groups_of(sweep(LR_SWEEP))
    assert find_baseline(groups, keys).settings == {
        "model.norm_position": "pre",
        "optimizer.lr": "0.002",
    }
    wanted = ["model.norm_position=post", "optimizer.lr=0.001"]
    assert find_baseline(groups, keys, wanted).label == (
        "model.norm_position=post, optimizer.lr=0.001"
    )
    nothing_yet = group_runs([make_run(1, None, v="a"), make_run(1, None, v="b")], ["v"])
    assert find_baseline(nothing_yet, ["v"]) is None


def test_the_fit_points_are_the_group_means_against_their_size():
    runs = [make_run(s, 2.0 + 0.1 * s, v="a") for s in (1, 2)] + [make_run(1, 1.8, v="b")]
    runs[-1].num_params = 4000
    points = fit_points(groups_of(runs)[0], "params")
    assert sorted(points) == [(1000.0, pytest.approx(2.15), "v=a"), (4000.0, 1.8, "v=b")]


def test_only_finished_runs_count_toward_a_groups_statistics():
    runs = [make_run(seed, 2.0 + seed / 10, model__norm_position="pre") for seed in (1, 2)]
    for status in ("running", "failed", "interrupted"):
        unfinished = make_run(3, 1.0, model__norm_position="pre")  # a low loss so far
        unfinished.status = status
        (group,), _ = groups_of([*runs, unfinished])
        assert group.n == 2 and group.summary().mean == pytest.approx(2.15)


def test_best_of_prefers_a_value_whose_every_seed_finished_and_says_why():
    runs = sweep({("post", 0.002): 2.30, ("post", 0.004): 2.25})
    diverged = next(
        r for r in runs if r.settings["optimizer.lr"] == 0.004 and r.settings["seed"] == 2
    )
    diverged.status = "failed"  # its seed 2 diverged: a mean over seed 1 alone looks best
    groups, keys = groups_of(runs)
    chosen = best_of(groups, keys, "optimizer.lr")
    assert [g.settings["optimizer.lr"] for g in chosen.chosen] == ["0.002"]
    assert any("optimizer.lr=0.004" in w and "over 1 of 2 runs" in w for w in chosen.warnings)
    (failed_group,) = [g for g in groups if g.settings["optimizer.lr"] == "0.004"]
    assert failed_group.uncounted_note() == (
        "optimizer.lr=0.004: 1 of 2 runs not counted (1 failed); its figures are over the other 1"
    )
    assert [g.uncounted_note() for g in chosen.chosen] == [None]


def test_a_baseline_key_given_twice_is_one_line():
    groups, keys = groups_of(sweep(LR_SWEEP))
    with pytest.raises(ChargptError, match=r"names model\.norm_position twice"):
        find_baseline(groups, keys, ["model.norm_position=pre", "model.norm_position=post"])


def test_no_test_is_named_where_a_single_run_allows_none():
    from chargpt.compare.group_table import GROUP_COLUMNS, grouped_csv, grouped_table

    runs = [make_run(1, 2.0, v="a"), make_run(1, 2.2, v="b")]  # one seed each
    groups, keys = groups_of(runs)
    table = grouped_table(groups, keys, groups[0])
    row = dict(zip(table.columns, table.rows[1], strict=True))
    assert row["test"] == "-" and row["p"] == "-" and row["vs baseline"] == "-"
    assert "test" in GROUP_COLUMNS
    last = grouped_csv(groups, keys, groups[0]).splitlines()[-1].split(",")
    assert last[-2:] == ["", ""]  # test, within_noise
