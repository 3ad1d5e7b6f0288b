"""compare's report.html: one self-contained page; its table, figures and per-run details."""

from __future__ import annotations

import base64
import math
from datetime import datetime
from pathlib import Path

import numpy as np
import plotly.offline
import pytest

from chargpt.compare.__main__ import Comparison
from chargpt.compare.groups import (
    best_of,
    find_baseline,
    group_runs,
    grouping_keys,
    sort_groups,
)
from chargpt.compare.plots import X_LABELS, group_colours
from chargpt.compare.report import (
    MAX_SAMPLE_CHARS,
    REPORT_HTML,
    best_of_figure,
    curve_figure,
    groups_table,
    last_sample,
    loss_figure,
    loss_figures,
    report_html,
    run_links,
    settings_difference,
    sort_value,
    write_report,
)
from chargpt.compare.stats import PowerLawFit
from chargpt.compare.table import differing_keys, sort_runs, status_counts
from chargpt.runs.read import NOT_STARTED, Run

STEPS = (100, 200, 300, 400)
TRAIN_STEPS = (50, 100, 150, 200, 250, 300, 350, 400)  # logged more often than validated
MADE_AT = datetime(2026, 12, 2, 5, 14, 37)
FIT = PowerLawFit(E=1.0, A=50.0, alpha=0.3, E_se=0.01, A_se=2.0, alpha_se=0.01)
SAMPLE_LOG = """\
[2026-12-02 05:14:30,001][INFO] step 100/400  val/loss 2.5000
[2026-12-02 05:14:37,770][INFO] --- sample at step 100 ---
FIRST CITIZEN:
Before we proceed
---
[2026-12-02 05:15:01,100][INFO] step 200/400  val/loss 2.1000
[2026-12-02 05:15:07,500][INFO] --- sample at step 200 ---
ALL:
Speak, speak.
---
[2026-12-02 05:15:09,000][INFO] done: 200 steps
"""


def make_run(
    folder: Path,
    seed: int = 1,
    settings: dict | None = None,
    status: str = "finished",
    error: str | None = None,
    offset: float = 0.0,
    num_params: int = 1000,
) -> Run:
    """A run as compare reads it: 100 tokens and 600 000 FLOPs a step (6 × 1000 parameters a
    token); losses that differ a little by seed, the training loss a little lower."""
    losses = [3.0 / (1 + step / 100) + offset + seed / 100 for step in STEPS]
    train = [3.0 / (1 + step / 100) + offset + seed / 100 - 0.05 for step in TRAIN_STEPS]
    finished = status == "finished"
    return Run(
        path=folder,
        status=status,
        error=error,
        settings={"seed": seed, "model.norm_position": "pre"} | (settings or {}),
        val_curve=list(zip(STEPS, losses, strict=True)),
        train_curve=list(zip(TRAIN_STEPS, train, strict=True)),
        tokens_seen=40_000,
        global_step=400,
        flops=40_000 * 6 * num_params,
        num_params=num_params,
        best_val_loss=min(losses) if finished else None,
        label=folder.name,
    )


def comparison(runs: list[Run], best_of_key: str | None = None) -> Comparison:
    """What compare() makes of the runs: the same steps, without reading folders."""
    runs = sort_runs(runs)
    keys = differing_keys(runs)
    rows = sort_groups(group_runs(runs, keys))
    row_keys = grouping_keys(keys)
    warnings: list[str] = []
    if best_of_key:
        chosen = best_of(rows, row_keys, best_of_key)
        rows, warnings = sort_groups(chosen.chosen), chosen.warnings
        row_keys = [key for key in row_keys if key != best_of_key]
    baseline = find_baseline(rows, row_keys)
    return Comparison(runs, keys, rows, row_keys, baseline, best_of_key, warnings)


def sweep(root: Path, positions=("pre", "post"), lrs=(0.001, 0.003), seeds=(1, 2, 3)) -> list[Run]:
    """positions × lrs × seeds runs, in folders 0, 1, … that exist."""
    runs = []
    for position in positions:
        for lr in lrs:
            for seed in seeds:
                folder = root / str(len(runs))
                folder.mkdir(parents=True)
                settings = {"model.norm_position": position, "optimizer.lr": lr}
                offset = (0.1 if position == "post" else 0.0) + abs(math.log(lr / 0.002)) / 10
                runs.append(make_run(folder, seed, settings, offset=offset))
    return runs


def traces(figure, role: str) -> list:
    return [trace for trace in figure.data if trace.meta == role]


def outside_plotly_js(page: str) -> str:
    """The page less the embedded library, whose own source names URLs it never fetches here."""
    library = plotly.offline.get_plotlyjs()
    assert page.count(library) == 1
    return page.replace(library, "")


def test_the_report_is_one_file_with_plotly_embedded_once_and_nothing_to_fetch(tmp_path):
    found = comparison(sweep(tmp_path / "runs"))
    path = write_report(found, tmp_path, x="tokens", made_at=MADE_AT, fit=FIT, fit_x="params")
    assert path == tmp_path / REPORT_HTML
    rest = outside_plotly_js(path.read_text(encoding="utf-8")).lower()
    assert "<link" not in rest and "src=" not in rest
    assert "http:" not in rest and "https:" not in rest
    assert "cdn" not in rest and "mathjax" not in rest
    # the library's, one per figure (val and train curves, sizes), the table sorter's; nothing
    # else runs
    assert rest.count("<script") == 5
    assert "made 2026-12-02 05:14:37" in rest and "refreshes this page" in rest
    assert "12 of 12 runs finished (12 finished)" in rest


def test_the_table_has_one_row_per_group_with_its_statuses_and_sorts(tmp_path):
    runs = sweep(tmp_path)
    runs[0] = make_run(runs[0].path, 1, runs[0].settings, status="failed", error="boom")
    found = comparison(runs)
    table = groups_table(found)
    assert len(table.rows) == len(found.rows) == 4
    assert table.columns[-1] == "status"
    statuses = {row[-1] for row in table.rows}
    assert statuses == {"3 finished", "2 finished, 1 failed"}
    page = report_html(found, tmp_path, x="step", made_at=MADE_AT)
    grouped = page.split('<table class="sortable">')[1].split("</table>")[0]
    assert grouped.count("<tr") == 1 + len(found.rows)  # the heading and one row per group
    # Every number cell carries the value it sorts by (the browser test clicks the headings).
    assert 'data-sort="3.0"' in grouped  # n


def test_each_run_has_its_details_and_a_failed_or_pending_run_says_what_it_is(tmp_path):
    runs = sweep(tmp_path, lrs=(0.002,))
    runs[1] = make_run(
        runs[1].path, 2, runs[1].settings, status="failed", error="CUDA out of memory"
    )
    pending = Run(
        path=tmp_path / "9",
        status=NOT_STARTED,
        settings={"seed": "3", "model.norm_position": "post", "optimizer.lr": "0.002"},
        partial=True,
        label="9",
    )
    (runs[0].path / "run.log").write_text(SAMPLE_LOG, encoding="utf-8")
    found = comparison([*runs, pending])
    page = report_html(found, tmp_path, x="step", made_at=MADE_AT)
    assert "last sample, at step 200:</p><pre>ALL:\nSpeak, speak.</pre>" in page
    assert '<a href="0/">folder</a>' in page
    assert page.count("<details") == len(found.runs) == 7
    assert "failed: CUDA out of memory" in page
    assert '<tr class="status-not-started">' in page and "· not started" in page
    assert status_counts(found.runs) == "5 finished, 1 failed, 1 not started"
    assert "5 of 7 runs finished" in page


def test_settings_errors_and_samples_from_the_folders_are_escaped(tmp_path):
    hostile = "<script>alert(1)</script> & more"
    runs = sweep(tmp_path, lrs=(0.002,), seeds=(1, 2))
    runs[0].settings["model.mlp"] = hostile  # differs from the other runs': a column
    runs[1] = make_run(runs[1].path, 2, runs[1].settings, status="failed", error=hostile)
    (runs[2].path / "run.log").write_text(
        f"--- sample at step 4 ---\n{hostile}\n---\n", encoding="utf-8"
    )
    page = outside_plotly_js(report_html(comparison(runs), tmp_path, x="step", made_at=MADE_AT))
    assert "alert" in page and "<script>alert" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in page
    assert "& more" not in page  # in the charts' labels as well: plotly reads them as HTML


def test_the_last_sample_is_read_from_run_log(tmp_path):
    log = tmp_path / "run.log"
    log.write_text(SAMPLE_LOG, encoding="utf-8")
    sample = last_sample(log)
    assert sample is not None
    assert (sample.step, sample.text) == (200, "ALL:\nSpeak, speak.")


@pytest.mark.parametrize(
    "content",
    [
        None,  # no run.log
        b"",
        b"\xff\xfe\x00garbage\n--- sample at step x ---\n---\n",
        b"[t][INFO] --- sample at step 5 ---\nunfinished, the job was killed\n",
    ],
    ids=["missing", "empty", "garbled", "unclosed"],
)
def test_no_sample_from_a_missing_or_garbled_log(tmp_path, content):
    log = tmp_path / "run.log"
    if content is not None:
        log.write_bytes(content)
    assert last_sample(log) is None


def test_an_unclosed_sample_leaves_the_last_complete_one(tmp_path):
    log = tmp_path / "run.log"
    log.write_text(SAMPLE_LOG + "[t][INFO] --- sample at step 300 ---\nhalf a\n", encoding="utf-8")
    assert last_sample(log).step == 200


def test_the_curves_hold_a_mean_and_a_band_per_group_and_each_run_hidden(tmp_path):
    found = comparison(sweep(tmp_path))
    figure = curve_figure(found.rows, "tokens", group_colours(found.rows))
    assert len(traces(figure, "mean")) == len(traces(figure, "band")) == 4
    runs = traces(figure, "run")
    assert len(runs) == 12 and {trace.visible for trace in runs} == {"legendonly"}
    assert all(trace.visible is None for trace in traces(figure, "mean"))
    assert list(runs[0].x) == [step * 100 for step in STEPS]  # tokens: 100 a step
    first = found.rows[0]
    assert runs[0].text == f"{first.runs[0].label} · {first.label} · finished"
    assert [button["label"] for button in figure.layout.updatemenus[0].buttons] == [
        "linear y",
        "log y",
    ]
    assert figure.layout.title.text.startswith("Validation loss")


def test_the_train_curves_hold_a_mean_per_group_and_each_run_hidden(tmp_path):
    found = comparison(sweep(tmp_path))
    figure = curve_figure(found.rows, "step", group_colours(found.rows), "train")
    means, runs = traces(figure, "mean"), traces(figure, "run")
    assert len(means) == len(traces(figure, "band")) == len(found.rows) == 4
    assert len(runs) == len(found.runs) == 12 and {trace.visible for trace in runs} == {
        "legendonly"
    }
    assert all(list(trace.x) == list(TRAIN_STEPS) for trace in [*means, *runs])
    group = found.rows[0]
    seeds = np.array([[loss for _, loss in run.train_curve] for run in group.runs])
    assert np.allclose(means[0].y, seeds.mean(axis=0))
    assert list(runs[0].y) == [loss for _, loss in group.runs[0].train_curve]
    assert figure.layout.title.text.startswith("Training loss")
    assert figure.layout.yaxis.title.text == "train loss (nats/char)"
    assert means[0].name.endswith("(n=3)") and "train loss, mean" in means[0].hovertemplate
    with pytest.raises(ValueError, match="not a loss curve"):
        curve_figure(found.rows, "step", group_colours(found.rows), "test")


def test_without_train_losses_the_train_figure_says_so(tmp_path):
    runs = sweep(tmp_path, lrs=(0.002,))
    for run in runs:
        run.train_curve = []
    found = comparison(runs)
    figure = curve_figure(found.rows, "step", group_colours(found.rows), "train")
    assert not figure.data and figure.layout.annotations[0].text == "no run has a train/loss yet"


def x_menu(figure):
    """The x-axis buttons of a curve figure."""
    (menu,) = [menu for menu in figure.layout.updatemenus if menu.name == "x axis"]
    return menu


def x_buttons(figure) -> dict:
    """The x-axis buttons of a curve figure, by the axis each switches to."""
    return {button.name: button for button in x_menu(figure).buttons}


def decoded(array) -> list[float]:
    """A button's array as numbers: plotly.js's typed-array spec (`typed_array`), or []."""
    if isinstance(array, dict):
        assert array["dtype"] == "f8"
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype="<f8").tolist()
    assert array == []
    return []


def indices(figure, role: str) -> list[int]:
    """Where the traces with `meta` role are in figure.data, which a button's lists follow."""
    return [index for index, trace in enumerate(figure.data) if trace.meta == role]


@pytest.mark.parametrize("curve", ["val", "train"])
def test_the_x_buttons_hold_every_trace_on_each_axis_a_run_can_give(tmp_path, curve):
    found = comparison(sweep(tmp_path))
    figure = curve_figure(found.rows, "tokens", group_colours(found.rows), curve)
    buttons = x_buttons(figure)
    assert list(buttons) == ["step", "tokens", "flops"]  # no run has perf/training_s: no time
    assert x_menu(figure).active == 1  # --x tokens: shown first
    run = indices(figure, "run")[0]  # the first group's first run
    first = found.rows[0].runs[0]
    steps = [step for step, _ in (first.train_curve if curve == "train" else first.val_curve)]
    per_step = {"step": 1, "tokens": 100, "flops": 100 * 6 * 1000}
    for axis, button in buttons.items():
        update, layout = button.args
        assert button.method == "update"
        assert decoded(update["x"][run]) == [step * per_step[axis] for step in steps]
        assert decoded(update["y"][run]) == list(figure.data[run].y)
        assert layout["xaxis.title.text"] == X_LABELS[axis]
        assert all(len(update[key]) == len(figure.data) for key in update)
    # tokens, the figure's own axis: each trace as drawn
    tokens = buttons["tokens"].args[0]
    for index, trace in enumerate(figure.data):
        assert decoded(tokens["x"][index]) == list(trace.x)
        assert tokens["name"][index] == trace.name
    assert buttons["flops"].args[1]["xaxis.exponentformat"] == "e"
    # the log-y toggle is still there beside it
    assert [b.label for b in figure.layout.updatemenus[0].buttons] == ["linear y", "log y"]


def test_an_axis_only_some_runs_give_empties_the_others_there(tmp_path):
    runs = sweep(tmp_path, lrs=(0.002,))
    runs[0].time_curve = [(step, step / 10) for step in STEPS]  # one run timed its training
    found = comparison(runs)
    figure = curve_figure(found.rows, "step", group_colours(found.rows))
    buttons = x_buttons(figure)
    assert list(buttons) == ["step", "tokens", "flops", "time"]
    time = buttons["time"].args[0]
    seconds = [step / 10 for step in STEPS]
    # the run and its group's mean, over that one run (no band); every other trace is empty
    assert [decoded(x) for x in time["x"] if x] == [seconds, seconds]
    means = indices(figure, "mean")
    assert sorted(time["name"][index][-5:] for index in means) == ["(n=0)", "(n=1)"]
    (timed,) = [index for index in means if time["x"][index]]
    assert decoded(time["y"][timed]) == [loss for _, loss in runs[0].val_curve]
    assert list(figure.data[timed].y) != decoded(time["y"][timed])  # on step: 3 seeds' mean


def test_a_single_axis_offers_no_x_buttons(tmp_path):
    runs = sweep(tmp_path, lrs=(0.002,))
    for run in runs:
        run.tokens_seen = run.flops = run.global_step = None  # no batch settings either
    found = comparison(runs)
    figure = curve_figure(found.rows, "step", group_colours(found.rows))
    assert traces(figure, "mean") and not any(m.name == "x axis" for m in figure.layout.updatemenus)


def test_a_group_of_one_run_has_no_band_and_no_usable_axis_says_so(tmp_path):
    found = comparison(sweep(tmp_path, seeds=(1,)))
    figure = curve_figure(found.rows, "step", group_colours(found.rows))
    assert len(traces(figure, "mean")) == 4 and not traces(figure, "band")
    no_times = curve_figure(found.rows, "time", group_colours(found.rows))  # no perf/training_s
    assert not no_times.data and "training times" in no_times.layout.annotations[0].text


def test_the_fit_line_is_drawn_only_with_a_fit_and_on_its_own_axis(tmp_path):
    runs = [
        make_run(tmp_path / f"{size}-{seed}", seed, {"model/size": size}, num_params=params)
        for size, params in (("a", 1_000), ("b", 10_000), ("c", 100_000))
        for seed in (1, 2)
    ]
    found = comparison(runs)
    colours = group_colours(found.rows)
    plain = loss_figure(found.rows, "params", colours)
    assert len(traces(plain, "point")) == 3 and not traces(plain, "fit")
    assert plain.layout.xaxis.type == "log"
    assert len(traces(loss_figure(found.rows, "params", colours, FIT), "fit")) == 1
    params, tokens = loss_figures(found.rows, colours, FIT, "tokens")
    assert not traces(params, "fit") and len(traces(tokens, "fit")) == 1


def test_the_best_of_plot_is_there_only_when_asked_for(tmp_path):
    runs = sweep(tmp_path)
    plain = report_html(comparison(runs), tmp_path, x="step", made_at=MADE_AT)
    picked = report_html(comparison(runs, "optimizer.lr"), tmp_path, x="step", made_at=MADE_AT)
    assert plain.count('class="plotly-graph-div"') == 3
    assert picked.count('class="plotly-graph-div"') == 4
    assert "per variant" not in plain and "per variant" in picked


def test_the_best_of_plot_has_a_line_per_variant_with_the_kept_value_starred(tmp_path):
    runs = sweep(tmp_path, lrs=(0.001, 0.002, 0.004))
    found = comparison(runs, "optimizer.lr")
    every = group_runs(found.runs, found.keys)
    figure = best_of_figure(every, "optimizer.lr", found.rows)
    lines = traces(figure, "variant")
    assert [trace.name for trace in lines] == [
        "model.norm_position=pre",
        "model.norm_position=post",
    ]
    assert list(lines[0].x) == [0.001, 0.002, 0.004] and figure.layout.xaxis.type == "log"
    assert [list(trace.marker.symbol) for trace in lines] == [["circle", "star", "circle"]] * 2


def test_links_are_relative_and_only_to_what_exists(tmp_path):
    run = make_run(tmp_path / "sweep" / "3")
    (run.path / "checkpoints").mkdir(parents=True)
    (run.path / "checkpoints" / "best.ckpt").write_bytes(b"")
    wandb_run = run.path / "wandb" / "offline-run-20261202_051437-abc"
    wandb_run.mkdir(parents=True)
    (wandb_run / "run-abc.wandb").write_bytes(b"")
    links = dict(run_links(run, tmp_path / "sweep"))
    assert links == {
        "folder": "3/",
        "checkpoints/best.ckpt": "3/checkpoints/best.ckpt",
        "wandb: offline-run-20261202_051437-abc": "3/wandb/offline-run-20261202_051437-abc/",
    }
    assert run_links(Run(path=tmp_path / "never", status=NOT_STARTED), tmp_path) == []


def test_the_settings_shown_are_those_that_differ_from_the_reference(tmp_path):
    reference = make_run(tmp_path / "a", settings={"optimizer.lr": 0.002, "paths.output_dir": "a"})
    other = make_run(tmp_path / "b", 2, {"optimizer.lr": 0.004, "paths.output_dir": "b"})
    assert settings_difference(other, reference) == [
        ("seed", "2", "1"),
        ("optimizer.lr", "0.004", "0.002"),
    ]
    pending = Run(path=tmp_path / "c", status=NOT_STARTED, settings={"seed": "1"}, partial=True)
    assert settings_difference(pending, reference) == []  # what it does not know is not a change


def test_several_samples_of_one_step_are_all_kept(tmp_path):
    """callbacks.sample.num_samples=3 joins its samples with `---` lines inside one record."""
    log = tmp_path / "run.log"
    log.write_text(
        SAMPLE_LOG + "[2026-12-02 05:16:00,000][INFO] --- sample at step 400 ---\n"
        "first\n---\nsecond\n---\nthird\n---\n[2026-12-02 05:16:01,000][INFO] done\n",
        encoding="utf-8",
    )
    sample = last_sample(log)
    assert (sample.step, sample.text) == (400, "first\n---\nsecond\n---\nthird")


def test_a_runaway_sample_is_cut_and_read_in_linear_time(tmp_path):
    log = tmp_path / "run.log"
    start = "[2026-12-02 05:16:00,000][INFO] --- sample at step 9 ---\n"
    log.write_text(start + "x" * (5 * MAX_SAMPLE_CHARS) + "\n" + "\n" * 200_000 + "---\n")
    sample = last_sample(log)  # 200,000 blank lines: a quadratic count would take minutes
    assert sample.step == 9 and len(sample.text) <= MAX_SAMPLE_CHARS


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1m 37s", 97.0),
        ("48.6 s", 48.6),
        ("2h 01m", 7260.0),
        ("2.1364 ± 0.0093", 2.1364),
        ("[2.1134, 2.1595]", 2.1134),
        ("+0.4224", 0.4224),
        ("-1.2018", -1.2018),
        ("809.9K", 809_900.0),
        ("1.5M", 1_500_000.0),
        ("12,345", 12_345.0),
        ("4.25e+12", 4.25e12),
        ("within noise", None),
        ("-", None),
        ("", None),
    ],
)
def test_cells_sort_by_their_number_durations_in_seconds(text, value):
    assert sort_value(text) == (None if value is None else pytest.approx(value))
