"""`python -m chargpt.compare`: runs found, read, sorted and marked; report and plots written."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
import typing
from pathlib import Path

import numpy as np
import pytest
from helpers import TINY, run
from omegaconf import OmegaConf
from scipy import stats

from chargpt.compare.__main__ import main
from chargpt.compare.discovery import find_runs
from chargpt.compare.table import comparison_table, differing_keys, sort_runs
from chargpt.compare.wandb_runs import inspect_run
from chargpt.runs.read import Run
from chargpt.runs.record import ABSENT, RESULTS, Results

BASE_CONFIG = {
    "seed": 1,
    "paths": {"output_dir": "${hydra:runtime.output_dir}"},
    "model": {"n_layer": 2, "norm_position": "pre", "block_size": 32},
    "data": {"block_size": "${model.block_size}"},
    "optimizer": {"lr": 0.002},
    "trainer": {"max_steps": 4},
    "logger": {"wandb": {"name": None, "save_dir": "${paths.output_dir}"}},
}
BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"


def make_run(
    folder: Path,
    overrides: tuple[str, ...] = (),
    config: dict | None = None,
    choices: dict | None = None,
    curve: tuple[tuple[int, float], ...] = ((10, 2.5),),
    status: str | None = "finished",
    error: str | None = None,
    results: dict | None = None,
) -> Path:
    """A run folder as run.py leaves it (README "Where outputs go"); status None: no run.json."""
    hydra = folder / ".hydra"
    hydra.mkdir(parents=True)
    OmegaConf.save(OmegaConf.merge(BASE_CONFIG, config or {}), hydra / "config.yaml")
    all_choices = {"model/size": "small", "experiment": None, "hydra/launcher": "basic"}
    runtime = {"choices": all_choices | (choices or {})}
    OmegaConf.save({"hydra": {"runtime": runtime}}, hydra / "hydra.yaml")
    OmegaConf.save(list(overrides), hydra / "overrides.yaml")
    (folder / "csv").mkdir()
    lines = ["step,val/loss,perf/tokens_per_s"] + [f"{s},{loss}," for s, loss in curve]
    (folder / "csv" / "metrics.csv").write_text("\n".join([*lines, "12,,900.0"]) + "\n")
    if status is not None:
        best = min((loss for _, loss in curve), default=None) if status == "finished" else None
        record = {
            "status": status,
            "error": error,
            "overrides": list(overrides),
            "run_dir": str(folder),
            "num_params": 1000,
            "global_step": 12,
            "best_val_loss": best,
            "val_bpc": None if best is None else best / math.log(2),
            "tokens_per_s": 1000.0,
            "wall_s": 63.2,
        }
        (folder / "run.json").write_text(json.dumps(record | (results or {})))
    return folder


def example_value(name: str) -> int | float:
    """A value for the result `name` that no default or other field has."""
    return 1_234_567 if int in typing.get_args(typing.get_type_hints(Results)[name]) else 2.375


def write_sweep_plan(sweep: Path, task_overrides: list[str]) -> None:
    """The multirun.yaml Hydra writes before a sweep's first job starts."""
    sweep.mkdir(parents=True, exist_ok=True)
    hydra = {
        "sweeper": {"_target_": BASIC_SWEEPER, "max_batch_size": None, "params": None},
        "sweep": {"dir": str(sweep), "subdir": "${hydra.job.num}"},
        "overrides": {"hydra": [], "task": task_overrides},
    }
    OmegaConf.save({"hydra": hydra}, sweep / "multirun.yaml")


def rows_by_label(runs) -> dict[str, dict[str, str]]:
    table = comparison_table(sort_runs(runs), differing_keys(runs))
    return {row[0]: dict(zip(table.columns, row, strict=True)) for row in table.rows}


@pytest.mark.parametrize(("result", "column"), RESULTS, ids=[f.name for f, _ in RESULTS])
def test_every_declared_result_is_a_column_of_the_table_and_the_report(tmp_path, result, column):
    value = example_value(result.name)
    results = {result.name: value}
    if result.name == "val_bpc":  # follows from the loss, which run.json must then agree with
        results["best_val_loss"] = value * math.log(2)
    make_run(tmp_path / "a", results=results)
    make_run(tmp_path / "b")
    assert rows_by_label(find_runs([tmp_path]))["a"][column.label] == column.cell(value)
    assert main([str(tmp_path)]) == 0
    report = (tmp_path / "compare.md").read_text()
    assert f" {column.label} |" in report and f" {column.cell(value)} |" in report


def test_runs_are_sorted_by_best_val_loss_with_unfinished_ones_last(tmp_path):
    make_run(tmp_path / "0", curve=((10, 2.5),))
    make_run(tmp_path / "1", curve=(), status="running")
    make_run(tmp_path / "2", curve=((10, 2.3), (20, 2.1)))
    make_run(tmp_path / "10", curve=((10, 2.2),))
    make_run(tmp_path / "3", curve=((10, math.nan),))  # diverged: NaN in run.json and the CSV
    assert [run.label for run in sort_runs(find_runs([tmp_path]))] == ["2", "10", "0", "1", "3"]


def test_columns_are_the_swept_settings_and_not_what_follows_from_them(tmp_path):
    for job, (size, position) in enumerate([("tiny", "pre"), ("tiny", "post"), ("small", "pre")]):
        make_run(
            tmp_path / str(job),
            overrides=(f"model/size={size}", f"model.norm_position={position}"),
            config={
                "model": {"n_layer": 2 if size == "tiny" else 4, "norm_position": position},
                "logger": {"wandb": {"name": f"model/size={size},{position}"}},  # per-run noise
            },
            choices={"model/size": size},
        )
    runs = find_runs([tmp_path])
    assert differing_keys(runs) == ["model/size", "model.norm_position"]
    assert rows_by_label(runs)["1"]["model.norm_position"] == "post"


def test_differences_not_from_a_swept_group_are_shown(tmp_path):
    post = {"model": {"norm_position": "post"}}
    make_run(tmp_path / "a", overrides=("model.norm_position=post",), config=post)
    make_run(tmp_path / "b", config={"optimizer": {"lr": 0.001}, "seed": 2})  # older defaults
    assert differing_keys(find_runs([tmp_path])) == ["model.norm_position", "optimizer.lr", "seed"]


def test_unfinished_and_failed_runs_are_marked_with_what_they_have(tmp_path):
    make_run(tmp_path / "done", curve=((10, 2.2),))
    make_run(tmp_path / "failed", curve=(), status="failed", error="val/loss is nan at step 3")
    make_run(tmp_path / "running", curve=((10, 2.9),), status="running")
    make_run(tmp_path / "no-record", curve=((10, 2.7),), status=None)
    rows = rows_by_label(find_runs([tmp_path]))
    assert rows["failed"]["status"] == "failed: val/loss is nan at step 3"
    assert rows["running"]["status"] == "running"
    assert rows["running"]["best val loss"] == "2.9000"  # from the metrics written so far
    assert rows["no-record"]["status"] == "incomplete"
    assert rows["no-record"]["tokens/s"] == "900"  # from metrics.csv: there is no run.json
    assert rows["done"]["val bpc"] == f"{2.2 / math.log(2):.3f}"


@pytest.mark.parametrize("content", ["[1, 2]", '"text"', '{"num_params": "many"}'])
def test_a_run_json_that_is_not_a_record_is_read_as_missing(tmp_path, capsys, content):
    make_run(tmp_path / "done", curve=((10, 2.2),))
    (make_run(tmp_path / "odd", curve=((10, 2.7),)) / "run.json").write_text(content)
    assert main([str(tmp_path), "--out", str(tmp_path / "report")]) == 0
    rows = rows_by_label(find_runs([tmp_path]))
    assert rows["odd"]["status"] == "incomplete" and rows["odd"]["best val loss"] == "2.7000"
    assert "| odd |" in (tmp_path / "report" / "compare.md").read_text()


def test_half_finished_sweep_lists_the_jobs_still_to_come(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    write_sweep_plan(sweep, ["model.norm_position=pre,post", "seed=1,2", "trainer.max_steps=4"])
    make_run(sweep / "0", overrides=("model.norm_position=pre", "seed=1", "trainer.max_steps=4"))
    job_1 = ("model.norm_position=pre", "seed=2", "trainer.max_steps=4")
    make_run(sweep / "1", job_1, config={"seed": 2}, curve=(), status="running")
    assert main([str(sweep)]) == 0
    out = capsys.readouterr().out
    assert "1 of 4 runs finished" in out and "2 not started" in out
    runs = find_runs([sweep])
    assert differing_keys(runs) == ["model.norm_position", "seed"]  # not what jobs 2, 3 lack
    rows = rows_by_label(runs)
    assert rows["2"]["status"] == "not started"
    assert (rows["2"]["model.norm_position"], rows["2"]["seed"]) == ("post", "1")
    assert (rows["3"]["model.norm_position"], rows["3"]["seed"]) == ("post", "2")


def test_command_prints_the_table_and_writes_the_report_and_plots(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    for job, layers, loss in (("0", 3, 2.6), ("1", 5, 2.4)):
        config = {"model": {"n_layer": layers}}
        make_run(sweep / job, (f"model.n_layer={layers}",), config, curve=((10, loss),))
    assert main([str(sweep)]) == 0
    out = capsys.readouterr().out
    assert "model.n_layer" in out and "2.4000" in out and "2 finished" in out
    report = (sweep / "compare.md").read_text()
    assert "| run | model.n_layer | params | best val loss |" in report
    assert report.index("| 1 | 5 |") < report.index("| 0 | 3 |")  # best first
    images = sorted(sweep.glob("*.png"))
    assert images  # whichever plots there are, each is a PNG that the report shows
    for image in images:
        assert image.read_bytes().startswith(b"\x89PNG")
        assert f"]({image.name})" in report
    page = (sweep / "report.html").read_text()  # the interactive report beside compare.md
    assert page.startswith("<!DOCTYPE html>") and "model.n_layer=5" in page
    assert "report.html" in out


def test_no_html_leaves_the_report_out(tmp_path):
    sweep = tmp_path / "sweep"
    for job, layers in (("0", 3), ("1", 5)):
        make_run(sweep / job, (f"model.n_layer={layers}",), {"model": {"n_layer": layers}})
    assert main([str(sweep), "--no-html"]) == 0
    assert (sweep / "compare.md").is_file() and not (sweep / "report.html").exists()


def test_single_runs_report_goes_to_the_out_folder(tmp_path, monkeypatch, capsys):
    make_run(tmp_path / "runs" / "a")
    monkeypatch.chdir(tmp_path)
    assert main([str(tmp_path / "runs" / "a")]) == 0
    assert (tmp_path / "comparison" / "compare.md").is_file()  # not inside the run
    assert main([str(tmp_path / "runs" / "a"), "--out", str(tmp_path / "here")]) == 0
    assert (tmp_path / "here" / "compare.md").is_file()


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda p: p.mkdir(), "no runs found; expected a run folder"),
        (lambda p: None, "no such folder"),
        (lambda p: write_sweep_plan(p, ["seed=1,2"]), "no runs yet; the sweep's 2 jobs"),
    ],
    ids=["empty folder", "missing", "sweep not started"],
)
def test_nothing_to_compare_is_one_line_and_a_failure(tmp_path, capsys, setup, message):
    path = tmp_path / "sweep"
    setup(path)
    assert main([str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(path) in err and message in err
    assert not (path / "compare.md").exists()


def test_an_out_that_is_a_file_is_one_line(tmp_path, capsys):
    make_run(tmp_path / "runs" / "a")
    (tmp_path / "report").write_text("not a folder")
    assert main([str(tmp_path / "runs"), "--out", str(tmp_path / "report")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "a file, not a folder" in err


def nested(settings: dict[str, object]) -> dict:
    """{"model.norm_position": "post"} -> {"model": {"norm_position": "post"}}: a config."""
    config: dict = {}
    for key, value in settings.items():
        *parents, name = key.split(".")
        node = config
        for parent in parents:
            node = node.setdefault(parent, {})
        node[name] = value
    return config


def make_seed_sweep(sweep: Path, losses: dict, results: dict | None = None) -> None:
    """A sweep with one job per (variant, seed): `losses` maps a variant's settings, as a tuple
    of (key, value), to its best val loss per seed {seed: loss}."""
    job = 0
    for variant, by_seed in losses.items():
        for seed, loss in by_seed.items():
            settings = dict(variant) | {"seed": seed}
            overrides = tuple(f"{key}={value}" for key, value in settings.items())
            name = ",".join(overrides)  # wandb's name and the output folder differ per run
            config = nested(settings) | {"logger": {"wandb": {"name": name}}}
            job_results = {"test_loss": loss + 0.01, "tokens_seen": 3000} | (results or {})
            curve = ((10, loss + 0.3), (20, loss))
            make_run(sweep / str(job), overrides, config, curve=curve, results=job_results)
            job += 1


PRE, POST = (("model.norm_position", "pre"),), (("model.norm_position", "post"),)
NORMS = {PRE: {1: 2.0, 2: 2.1, 3: 2.3}, POST: {1: 2.2, 2: 2.25, 3: 2.5}}


def read_csv(path: Path) -> dict[str, dict[str, str]]:
    """compare.csv by its first column."""
    with open(path, newline="") as file:
        return {row[next(iter(row))]: row for row in csv.DictReader(file)}


def printed_table(out: str) -> dict[str, dict[str, str]]:
    """The table the command printed, by its first column (the console is wide: no wrapping)."""
    lines = [line.strip() for line in out.splitlines()]
    (header,) = [_cells(line, "┃") for line in lines if line.startswith("┃")]
    rows = [dict(zip(header, _cells(line, "│"), strict=True)) for line in lines if line[:1] == "│"]
    return {row[header[0]]: row for row in rows}


def _cells(line: str, rule: str) -> list[str]:
    return [cell.strip() for cell in line[1:-1].split(rule)]


def test_a_sweep_over_seeds_is_one_row_per_variant_with_its_statistics(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    make_seed_sweep(sweep, NORMS)
    assert main([str(sweep)]) == 0
    out = capsys.readouterr().out
    printed, rows = printed_table(out), read_csv(sweep / "compare.csv")
    assert list(printed) == list(rows) == ["pre", "post"]  # best first; pre is the baseline
    pre, post = list(NORMS[PRE].values()), list(NORMS[POST].values())
    for position, losses in (("pre", pre), ("post", post)):
        mean, std = np.mean(losses), np.std(losses, ddof=1)
        low, high = stats.t.interval(0.95, 2, loc=mean, scale=stats.sem(losses))
        shown, row = printed[position], rows[position]
        assert shown["n"] == "3" and shown["best val loss"] == f"{mean:.4f} ± {std:.4f}"
        assert shown["95% CI"] == f"[{low:.4f}, {high:.4f}]"
        assert (row["n"], row["seeds"]) == ("3", "1 2 3")
        figures = [row[f"best_val_loss_{name}"] for name in ("mean", "std", "ci_low", "ci_high")]
        assert [float(figure) for figure in figures] == pytest.approx([mean, std, low, high])
        bpc = np.asarray(losses) / math.log(2)
        assert float(row["val_bpc_std"]) == pytest.approx(np.std(bpc, ddof=1))
        assert float(row["test_loss_mean"]) == pytest.approx(mean + 0.01)
        assert (row["num_params"], row["tokens_seen_mean"]) == ("1000", "3000.0")
    assert printed["pre"]["vs baseline"] == rows["pre"]["test"] == "baseline"
    assert rows["pre"]["delta"] == ""
    paired = stats.ttest_rel(post, pre)  # the same seeds: paired
    interval, delta = paired.confidence_interval(0.95), np.mean(post) - np.mean(pre)
    shown, row = printed["post"], rows["post"]
    assert shown["Δ best val loss"] == f"{delta:+.4f}"
    assert shown["Δ 95% CI"] == f"[{interval.low:+.4f}, {interval.high:+.4f}]"
    assert (shown["p"], shown["test"]) == (f"{paired.pvalue:.2g}", "paired")
    assert shown["vs baseline"] == "worse"  # the interval is above 0
    figures = [float(row[key]) for key in ("delta", "delta_ci_low", "delta_ci_high", "p_value")]
    assert figures == pytest.approx([delta, interval.low, interval.high, paired.pvalue])
    assert (row["test"], row["within_noise"]) == ("paired", "false")
    assert "2 groups of 6 runs (6 finished)" in out
    report = (sweep / "compare.md").read_text()
    grouped = report.index("| model.norm_position | n | best val loss | 95% CI |")
    assert grouped < report.index("| run | model.norm_position | seed | params |")


def test_runs_lists_single_runs_instead(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    make_seed_sweep(sweep, NORMS)
    assert main([str(sweep), "--runs"]) == 0
    printed = printed_table(capsys.readouterr().out)
    assert len(printed) == 6 and "95% CI" not in printed["0"]
    assert printed["0"]["seed"] == "1" and printed["0"]["status"] == "finished"
    assert len(read_csv(sweep / "compare.csv")) == 2  # the report keeps both views


def test_a_difference_inside_the_noise_is_marked_and_a_lone_run_has_no_spread(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    noisy = {PRE: {1: 2.0, 2: 2.4, 3: 2.1}, POST: {4: 2.1, 5: 2.0, 6: 2.3}}
    make_seed_sweep(sweep, noisy | {(("model.norm_position", "mid"),): {1: 2.6}})
    assert main([str(sweep), "--baseline", "model.norm_position=post"]) == 0
    printed, rows = printed_table(capsys.readouterr().out), read_csv(sweep / "compare.csv")
    welch = stats.ttest_ind([2.0, 2.4, 2.1], [2.1, 2.0, 2.3], equal_var=False)  # other seeds
    assert (rows["pre"]["test"], rows["pre"]["within_noise"]) == ("welch", "true")
    assert float(rows["pre"]["p_value"]) == pytest.approx(welch.pvalue)
    assert (printed["pre"]["test"], printed["pre"]["vs baseline"]) == ("welch", "within noise")
    assert printed["post"]["vs baseline"] == rows["post"]["test"] == "baseline"
    lone = printed["mid"]
    assert (lone["n"], lone["best val loss"], lone["95% CI"]) == ("1", "2.6000 ± -", "-")
    assert (lone["p"], lone["Δ 95% CI"], lone["vs baseline"]) == ("-", "-", "-")
    assert rows["mid"]["best_val_loss_std"] == rows["mid"]["p_value"] == ""
    assert rows["mid"]["within_noise"] == ""


LRS = {
    (("model.norm_position", position), ("optimizer.lr", lr)): {1: loss, 2: loss + 0.02}
    for position, losses in (("pre", (2.3, 2.1, 2.2)), ("post", (2.5, 2.3, 2.2)))
    for lr, loss in zip((0.001, 0.002, 0.004), losses, strict=True)
}


def test_best_of_judges_each_variant_at_its_own_best_value(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    make_seed_sweep(sweep, LRS)
    assert main([str(sweep), "--best-of", "optimizer.lr"]) == 0
    out = capsys.readouterr().out
    rows = read_csv(sweep / "compare.csv")
    assert {k: row["best_optimizer.lr"] for k, row in rows.items()} == {
        "pre": "0.002",
        "post": "0.004",
    }
    assert [row["best optimizer.lr"] for row in printed_table(out).values()] == ["0.002", "0.004"]
    warning = (
        "best optimizer.lr=0.004 for model.norm_position=post is at the edge of the grid "
        "(0.001–0.004): widen the sweep"
    )
    assert f"warning: {warning}\n" in out and warning in (sweep / "compare.md").read_text()
    assert "best optimizer.lr=0.002" not in out  # pre's best lies inside its grid
    # post at its own best rate (2.2, 2.22) against pre at its own (2.1, 2.12), not at pre's.
    assert float(rows["post"]["delta"]) == pytest.approx(0.1)


def test_fit_prints_the_power_law_and_needs_three_sizes(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    sizes = (1e4, 3e4, 1e5, 3e5, 1e6)
    for job, size in enumerate(sizes):
        loss = 1.5 + 40 * size**-0.3
        overrides = (f"model.n_layer={job + 1}",)
        results = {"num_params": int(size)}
        config = {"model": {"n_layer": job + 1}}
        make_run(sweep / str(job), overrides, config, curve=((10, loss),), results=results)
    assert main([str(sweep), "--fit", "params"]) == 0
    out = capsys.readouterr().out
    (line,) = [line for line in out.splitlines() if line.startswith("--fit params")]
    assert line.startswith("--fit params (5 groups): L = E + A·X^(−alpha): E = 1.5 ± ")
    assert "A = 40 ± " in line and "alpha = 0.3 ± " in line
    assert "](fit_params.png)" in (sweep / "compare.md").read_text()

    few = tmp_path / "few"
    make_seed_sweep(few, NORMS)  # one size
    assert main([str(few), "--fit", "params"]) == 0
    out = capsys.readouterr().out
    assert "--fit params: needs 3 or more distinct params values, found 1; no fit\n" in out


def test_the_x_axis_is_passed_to_the_plots(tmp_path, monkeypatch, capsys):
    import chargpt.compare.__main__ as command

    seen = []
    monkeypatch.setattr(command, "write_plots", lambda groups, out, x: seen.append(x) or [])
    make_seed_sweep(tmp_path / "sweep", NORMS)
    assert main([str(tmp_path / "sweep"), "--x", "flops"]) == 0
    assert main([str(tmp_path / "sweep")]) == 0
    assert seen == ["flops", "tokens"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            ["--baseline", "foo=1"],
            "--baseline foo=1: foo does not differ between the groups; choose one of: "
            "model.norm_position, optimizer.lr",
        ),
        (
            ["--baseline", "model.norm_position"],
            "--baseline model.norm_position: expected KEY=VALUE",
        ),
        (
            ["--baseline", "model.norm_position=mid"],
            "--baseline model.norm_position=mid matches no group; the groups have: "
            "model.norm_position=pre; model.norm_position=post",
        ),
        (
            ["--baseline", "model.norm_position=pre"],
            "--baseline model.norm_position=pre matches 3 groups (",
        ),
        (["--baseline", "model.norm_position=pre"], "add another --baseline KEY=VALUE"),
        (
            ["--best-of", "model.n_layer"],
            "--best-of model.n_layer: model.n_layer does not vary between the runs; "
            "choose one of: model.norm_position, optimizer.lr",
        ),
        (["--best-of", "seed"], "--best-of seed: runs that differ only in seed form one group"),
        (["--fit", "width"], "argument --fit: invalid choice: 'width'"),
    ],
    ids=[
        "unknown key",
        "no =",
        "no match",
        "several",
        "several: what to do",
        "best-of",
        "seed",
        "fit",
    ],
)
def test_bad_comparison_options_are_one_line_and_a_failure(tmp_path, capsys, options, message):
    sweep = tmp_path / "sweep"
    make_seed_sweep(sweep, LRS)
    assert main([str(sweep), *options]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert not (sweep / "compare.md").exists() and not (sweep / "compare.csv").exists()


SWEEP = [*TINY, "trainer.max_steps=4", "trainer.val_every_n_steps=2"]


def test_a_real_sweep_is_compared_from_its_folders_and_its_wandb_files(tmp_path, play_file):
    sweep = tmp_path / "sweep"
    data = ["data=text", f"data.path={play_file}"]
    run(["-m", *data, *SWEEP, "model.norm_position=pre,post", f"hydra.sweep.dir={sweep}"])
    result = subprocess.run(
        [sys.executable, "-m", "chargpt.compare", str(sweep)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    rows = rows_by_label(find_runs([sweep]))
    assert {label: row["model.norm_position"] for label, row in rows.items()} == {
        "0": "pre",
        "1": "post",
    }
    assert all(row["status"] == "finished" for row in rows.values())
    assert (sweep / "compare.md").is_file() and list(sweep.glob("*.png"))
    for label, row in rows.items():  # the test loss and the tokens, also in compare.md
        record = json.loads((sweep / label / "run.json").read_text())
        assert row["test loss"] == f"{record['test_loss']:.4f}" != ABSENT
        assert row["tokens seen"] == "512"  # 4 steps of 8 windows of 16 characters
    assert "| test loss | tokens seen |" in (sweep / "compare.md").read_text()

    # Each job's offline wandb files hold its config and metrics; the sweep is one wandb group.
    for job, position in (("0", "pre"), ("1", "post")):
        record = json.loads((sweep / job / "run.json").read_text())
        (from_wandb,) = find_runs([sweep / job / "wandb"])
        assert from_wandb.best_val_loss == pytest.approx(record["best_val_loss"])
        # The last logged rate is run.json's: the whole run's, not a recent window's.
        assert from_wandb.tokens_per_s == pytest.approx(record["tokens_per_s"])
        assert from_wandb.test_loss == pytest.approx(record["test_loss"])
        assert from_wandb.settings["model.norm_position"] == position
        (wandb_run,) = (sweep / job / "wandb").glob("offline-run-*")
        (header,) = [r["run"] for r in inspect_run(wandb_run) if r["type"] == "run"]
        assert header["run_group"] == str(sweep)  # grouped online once synced
    # The compare command linked both runs into one folder that `wandb leet` browses.
    links = sorted((sweep / "wandb").iterdir())
    assert len(links) == 2 and all(link.is_symlink() for link in links)
    assert [run.status for run in find_runs([sweep / "wandb"])] == ["finished", "finished"]


def test_tensorboard_run_is_compared_from_its_event_files(tmp_path, play_file):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir = tmp_path / "run"
    data = ["data=text", f"data.path={play_file}"]
    run([*data, *TINY, "logger=tensorboard", f"hydra.run.dir={run_dir}"])
    (events_dir,) = (run_dir / "tensorboard").iterdir()  # the run's named folder
    events = EventAccumulator(str(events_dir))
    events.Reload()
    val_loss = [(event.step, event.value) for event in events.Scalars("val/loss")]
    assert len(val_loss) == 2  # validated at the interval (10) and the last step (15)
    (compared,) = find_runs([run_dir])
    assert compared.val_curve == val_loss
    assert compared.status == "finished"


def test_code_that_only_moved_module_is_no_difference_but_other_code_is(tmp_path):
    def run_with(settings, overridden=()):
        return Run(path=tmp_path, status="finished", settings=settings, overridden=list(overridden))

    key = "callbacks.sample._target_"
    moved = [
        run_with({key: "chargpt.training.callbacks.SampleCallback"}),
        run_with({key: "chargpt.training.callbacks.samples.SampleCallback"}),
    ]
    assert differing_keys(moved) == []
    added = "callbacks.stamp._target_"  # a callback one run adds (benchmarks/README's step times)
    other = [run_with({}), run_with({added: "stepstamp.StepStamp"}, overridden=[added])]
    assert differing_keys(other) == [added]
