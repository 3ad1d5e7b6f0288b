"""compare's plots: curves averaged over seeds on each x axis, sizes with intervals, the fit."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from chargpt.compare.groups import Group, group_runs
from chargpt.compare.plots import (
    NO_X,
    X_AXES,
    compact,
    fit_formula,
    mean_curve,
    plot_val_curves,
    scientific,
    short_label,
    tokens_per_step,
    write_fit_plot,
    write_plots,
    x_values,
)
from chargpt.compare.stats import PowerLawFit
from chargpt.runs.read import Run

PNG = b"\x89PNG\r\n\x1a\n"
STEPS = (0, 10, 20, 30)


def make_run(
    seed: int = 1,
    losses: tuple[float, ...] | None = None,
    steps: tuple[int, ...] = STEPS,
    times: tuple[tuple[int, float], ...] = ((10, 5.0), (20, 10.0), (30, 15.0)),
    settings: dict | None = None,
    **results,
) -> Run:
    """A run as compare reads it: 100 tokens a step, 6000 FLOPs a token, 1000 parameters; by
    default its losses differ a little by seed, as real seeds' do."""
    if losses is None:
        losses = tuple(loss + seed / 100 for loss in (3.0, 2.5, 2.2, 2.0))
    defaults = {"tokens_seen": 3000, "global_step": 30, "flops": 18_000_000, "num_params": 1000}
    return Run(
        path=Path(f"run{seed}"),
        status="finished",
        settings={"seed": seed, "model.norm_position": "pre"} | (settings or {}),
        val_curve=list(zip(steps, losses, strict=True)),
        time_curve=list(times),
        best_val_loss=min(losses, default=None),
        label=f"run{seed}",
        **(defaults | results),
    )


def is_png(path: Path) -> bool:
    return path.is_file() and path.read_bytes()[:8] == PNG


def axes_texts(figure) -> list[str]:
    return [text.get_text() for ax in figure.axes for text in ax.texts]


def test_the_band_is_numpys_mean_and_std_over_the_seeds():
    rng = np.random.default_rng(0)
    losses = rng.uniform(1.0, 3.0, size=(3, len(STEPS)))
    group = Group({}, [make_run(seed, tuple(row)) for seed, row in enumerate(losses, 1)])
    xs, means, stds = mean_curve(group, "step")
    np.testing.assert_allclose(xs, STEPS)
    np.testing.assert_allclose(means, losses.mean(axis=0))
    np.testing.assert_allclose(stds, losses.std(axis=0, ddof=1))


def test_the_mean_is_taken_at_the_steps_all_runs_share_and_runs_without_a_curve_are_skipped():
    short = make_run(2, (4.0, 3.0), steps=(0, 10))
    group = Group({}, [make_run(1, (3.0, 2.5, 2.2, 2.0)), short, make_run(3, (), steps=())])
    xs, means, stds = mean_curve(group, "step")
    np.testing.assert_allclose(xs, [0, 10])
    np.testing.assert_allclose(means, [3.5, 2.75])
    np.testing.assert_allclose(stds, np.std([[3.0, 2.5], [4.0, 3.0]], axis=0, ddof=1))


def test_a_group_of_one_run_has_its_curve_and_no_spread():
    _, means, stds = mean_curve(Group({}, [make_run(losses=(3.0, 2.5, 2.2, 2.0))]), "step")
    np.testing.assert_allclose(means, [3.0, 2.5, 2.2, 2.0])
    assert np.isnan(stds).all()


def test_tokens_flops_and_time_are_converted_from_the_steps():
    run = make_run()
    np.testing.assert_allclose(x_values(run, STEPS, "step"), STEPS)
    np.testing.assert_allclose(x_values(run, STEPS, "tokens"), [0, 1000, 2000, 3000])
    np.testing.assert_allclose(x_values(run, STEPS, "flops"), [0, 6e6, 12e6, 18e6])
    # Logged at 10, 20, 30; none at step 0, where no training has happened yet.
    np.testing.assert_allclose(x_values(run, [0, 5, 15, 30], "time"), [0.0, 2.5, 7.5, 15.0])


def test_a_step_after_the_last_logged_time_is_left_out_not_guessed():
    run = make_run(times=((10, 5.0), (20, 10.0)))
    xs, _, _ = mean_curve(Group({}, [run]), "time")
    np.testing.assert_allclose(xs, [0.0, 5.0, 10.0])


def test_tokens_per_step_falls_back_on_the_batch_settings_without_run_json():
    settings = {
        "data.batch_size": 8,
        "model.block_size": 16,
        "trainer.accumulate_grad_batches": 2,
        "trainer.devices": 2,
    }
    run = make_run(settings=settings, tokens_seen=None, global_step=None, flops=None)
    assert tokens_per_step(run) == 8 * 16 * 2 * 2
    np.testing.assert_allclose(x_values(run, [10], "tokens"), [5120])
    assert x_values(run, [10], "flops") is None  # FLOPs per token are only in run.json
    unknown = make_run(settings=settings | {"trainer.devices": "auto"}, tokens_seen=None)
    assert tokens_per_step(unknown) is None and x_values(unknown, [10], "tokens") is None


def test_a_group_without_training_times_is_left_out_of_the_time_plot():
    timed = make_run(1)
    untimed = make_run(2, settings={"model.norm_position": "post"}, times=())
    timed_group, untimed_group = group_runs([timed, untimed], ["model.norm_position"])
    assert mean_curve(untimed_group, "time") is None
    figure = plot_val_curves([timed_group, untimed_group], "time", [(0, 0, 0, 1)] * 2)
    (legend_text,) = [[t.get_text() for t in ax.get_legend().get_texts()] for ax in figure.axes]
    assert legend_text == ["model.norm_position=pre (n=1)"]


def test_with_no_run_able_to_give_the_x_the_plot_says_so(tmp_path):
    groups = [Group({}, [make_run(1, times=()), make_run(2, times=())])]
    paths = write_plots(groups, tmp_path, x="time")
    assert all(is_png(path) for path in paths)
    figure = plot_val_curves(groups, "time", [(0, 0, 0, 1)])
    assert NO_X["time"] in axes_texts(figure)
    assert "try --x step" in NO_X["time"]


@pytest.mark.parametrize("x", X_AXES)
def test_both_plots_are_written_as_pngs_for_every_axis(tmp_path, x):
    runs = [
        make_run(seed, settings={"model.norm_position": norm})
        for seed in (1, 2, 3)
        for norm in ("pre", "post")
    ]
    runs.append(make_run(9, settings={"model.norm_position": "${a} $b$"}, num_params=4000))
    paths = write_plots(group_runs(runs, ["seed", "model.norm_position"]), tmp_path, x=x)
    assert [path.name for path in paths] == [f"val_loss_vs_{x}.png", "best_val_loss_vs_params.png"]
    assert all(is_png(path) for path in paths)


def test_the_legend_gives_the_band_each_groups_label_and_n():
    runs = [make_run(seed) for seed in (1, 2)]
    figure = plot_val_curves(group_runs(runs, ["seed"]), "tokens", [(0, 0, 1, 1)])
    (legend,) = [ax.get_legend() for ax in figure.axes]
    assert legend.get_title().get_text() == "band: ±1 std over seeds"
    assert [t.get_text() for t in legend.get_texts()] == ["all runs (n=2)"]


def test_an_unknown_axis_is_refused(tmp_path):
    with pytest.raises(ValueError, match="x='epochs'"):
        write_plots([], tmp_path, x="epochs")


def test_empty_groups_still_give_both_plots(tmp_path):
    assert all(is_png(path) for path in write_plots([], tmp_path))


def test_a_points_annotation_is_the_short_label():
    group = Group({"model.norm_position": "post", "model/size": "tiny"}, [make_run()])
    assert short_label(group) == "norm_position=post, size=tiny"
    long = Group({"model.norm_position": "x" * 80}, [make_run()])
    assert len(short_label(long)) <= 30


def test_the_fit_plot_is_written(tmp_path):
    fit = PowerLawFit(E=1.2, A=40.0, alpha=0.3, E_se=0.05, A_se=3.0, alpha_se=math.inf)
    points = [(n, float(fit.predict([n])[0]), f"size={n}") for n in (1e4, 1e5, 1e6)]
    path = write_fit_plot(points, fit, "params", tmp_path)
    assert path == tmp_path / "fit_params.png" and is_png(path)


def test_a_fit_plot_without_positive_points_says_so(tmp_path):
    fit = PowerLawFit(E=1.2, A=40.0, alpha=0.3, E_se=0.05, A_se=3.0, alpha_se=0.01)
    assert is_png(write_fit_plot([(0.0, 2.0, "a"), (math.nan, 2.0, "b")], fit, "flops", tmp_path))


def test_the_fit_formula_gives_each_value_with_its_standard_error():
    fit = PowerLawFit(E=1.2, A=40.0, alpha=0.3, E_se=0.05, A_se=3.0, alpha_se=math.inf)
    assert fit_formula(fit) == "L = 1.2 + 40·X^−0.3\nE = 1.2 ± 0.05, A = 40 ± 3, α = 0.3 ± ∞"


def test_tick_labels_are_compact_for_counts_and_scientific_for_flops():
    assert [compact(v) for v in (0, 500, 1500, 2e6, 3e9)] == ["0", "500", "1.5K", "2M", "3G"]
    assert [scientific(v) for v in (0, 2.5e12, 1e13)] == ["0", "2.5e12", "1e13"]


def test_a_running_job_does_not_cut_the_finished_runs_mean_short():
    finished = [make_run(seed) for seed in (1, 2)]
    running = make_run(3, losses=(1.0, 1.0), steps=STEPS[:2])
    running.status = "running"
    xs, means, _ = mean_curve(Group({}, [*finished, running]), "step")
    assert list(xs) == list(STEPS)  # all four steps of the finished runs
    assert means[0] == pytest.approx(np.mean([3.01, 3.02]))
    # While none has finished, the runs under way are the plot.
    xs, _, _ = mean_curve(Group({}, [running]), "step")
    assert list(xs) == list(STEPS[:2])
