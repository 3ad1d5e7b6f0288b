"""What a run prints and what its run.log keeps, through run.py and chargpt-train."""

from __future__ import annotations

import io
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import TINY, run, run_env, wandb_summary

from chargpt.runs.variant import folder_label
from chargpt.training.console import ALWAYS, ConsoleHandler, log_always, set_console_quiet

# What a default run printed before the console was quieted (issue 16), none of which a user
# needs: Lightning's tips, device lines, its model summary (twice announced, FLOPs all zero),
# a deprecation warning from Lightning's use of torch, wandb's banner and history, the bar's
# `Epoch 0/-2` and logger version, Lightning's test table and checkpoint-restoring lines.
NOISE = (
    "Trainer already configured with model summary callbacks",
    "GPU available",
    "TPU available",
    "litlogger",
    "💡",
    "isinstance(treespec, LeafSpec)",
    "anonymous setting",
    "Tracking run with wandb",
    "W&B syncing is set to",
    "View this run in the terminal",
    "Run history",
    "Run summary",
    "wandb: ",
    "Total params",
    "Total Flops",
    "Epoch 0/",
    "v_num",
    "Test metric",
    "Restoring states from the checkpoint",
    "Loaded model weights",
    "`Trainer.fit` stopped",
)


def _noise_in(text: str) -> list[str]:
    return [line for line in NOISE if line in text]


def test_a_run_prints_its_settings_losses_samples_and_summary_and_none_of_the_noise(
    tmp_path, play_file, monkeypatch
):
    monkeypatch.delenv("WANDB_SILENT")  # the tests' wandb is silent; the user's is not
    run_dir = tmp_path / "run"
    result = run(
        ["data=text", f"data.path={play_file}", *TINY, f"hydra.run.dir={run_dir}"],
        full_error=False,
    )
    console = result.stdout + result.stderr
    assert _noise_in(console) == []
    log = (run_dir / "run.log").read_text()
    for text in (console, log):
        assert "settings: data=text" in text
        assert "model:    " in text and " parameters" in text
        assert "step 10/15  val/loss " in text
        assert "step 15/15  val/loss " in text
        assert "--- sample at step 10 ---" in text
        assert "--- sample at step 15 ---" in text
        assert "test/loss " in text
        assert "done: 15 steps in " in text and "best val/loss " in text
        assert f"outputs:      {run_dir}" in text
    # The progress bar, drawn once at the end into a pipe: `step ━━━ 15/15 … tokens/s: …`.
    assert re.search(r"^step +━+ 15/15 ", result.stdout, re.MULTILINE)
    assert re.search(r"^ +tokens/s: [\d,]+", result.stdout, re.MULTILINE)
    assert len(console.splitlines()) < 45  # it was 94 for a run like this one


def test_a_resumed_run_says_where_it_resumed_and_counts_its_steps_from_the_start(
    tmp_path, play_file, monkeypatch
):
    monkeypatch.delenv("WANDB_SILENT")
    run_dir = tmp_path / "run"
    data = ["data=text", f"data.path={play_file}", *TINY]
    run([*data, "trainer.max_steps=4", f"hydra.run.dir={run_dir}"])
    result = run(
        ["ckpt_path=last", "trainer.max_steps=6", f"hydra.run.dir={run_dir}"], full_error=False
    )
    console = result.stdout + result.stderr
    assert _noise_in(console) == []
    assert "exists and is not empty" not in console and "\n\n\n" not in console
    last = run_dir / "checkpoints" / "last.ckpt"
    assert f"resume:   from {last} at step 4" in result.stdout
    (settings,) = [line for line in result.stdout.splitlines() if line.startswith("settings:")]
    # The first launch's overrides with this launch's in their place.
    assert "trainer.max_steps=6" in settings and "trainer.max_steps=4" not in settings
    assert "data=text" in settings
    assert re.search(r"^step +━+ 6/6 ", result.stdout, re.MULTILINE)  # not `6/2`
    assert "done: 6 steps in " in (run_dir / "run.log").read_text()


def test_verbose_brings_back_what_the_libraries_print(tmp_path, play_file, monkeypatch):
    monkeypatch.delenv("WANDB_SILENT")
    result = run(
        [
            "data=text",
            f"data.path={play_file}",
            *TINY,
            "trainer.max_steps=2",
            "verbose=true",
            f"hydra.run.dir={tmp_path / 'run'}",
        ]
    )
    console = result.stdout + result.stderr
    for line in ("GPU available", "Total params", "wandb: ", "Test metric"):
        assert line in console


def test_a_bad_verbose_value_is_one_line(tmp_path):
    result = run(
        ["verbose=loud", f"hydra.run.dir={tmp_path / 'run'}"], check=False, full_error=False
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == ["error: verbose='loud': must be true or false"]


def test_a_sweep_prints_one_line_per_finished_job_and_each_run_log_keeps_the_rest(
    tmp_path, play_file, monkeypatch
):
    monkeypatch.delenv("WANDB_SILENT")
    sweep_dir = tmp_path / "sweep"
    result = run(
        [
            "-m",
            "data=text",
            f"data.path={play_file}",
            *TINY,
            "trainer.max_steps=4",
            "trainer.val_every_n_steps=2",
            "seed=1,2",
            f"hydra.sweep.dir={sweep_dir}",
        ],
        full_error=False,
    )
    console = result.stdout + result.stderr
    assert _noise_in(console) == []
    job_lines = [line for line in result.stdout.splitlines() if line.startswith("job ")]
    assert [line.split(":")[0] for line in job_lines] == ["job 0", "job 1"]
    assert "seed=1 · 4 steps in " in job_lines[0] and f"-> {sweep_dir / '0'}" in job_lines[0]
    assert "sample at step" not in console
    assert [line for line in console.splitlines() if "  val/loss " in line] == []
    for job in ("0", "1"):
        log = (sweep_dir / job / "run.log").read_text()
        assert "--- sample at step 4 ---" in log and "step 4/4  val/loss " in log


def test_chargpt_train_runs_from_any_directory_and_its_resume_hint_works_there(tmp_path, play_file):
    script = Path(sys.executable).parent / "chargpt-train"
    assert script.is_file(), "chargpt-train is not installed: pip install -e ."
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    overrides = ["data=text", f"data.path={play_file}", *TINY, "trainer.max_steps=4"]
    first = subprocess.run(
        [str(script), *overrides, "logger=csv"],
        cwd=elsewhere,
        env=run_env(full_error=True),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert first.returncode == 0, first.stderr[-3000:]
    (run_dir,) = (elsewhere / "outputs").glob("*/*")
    hint = next(line for line in first.stdout.splitlines() if "(resume: " in line)
    resume = hint.split("(resume: ")[1].rstrip(")").split()
    assert resume[1] == f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}"
    # The hint, as printed, from yet another directory: the run goes on in its own folder.
    again = subprocess.run(
        [*_as_command(resume), "trainer.max_steps=6"],
        cwd=tmp_path,
        env=run_env(full_error=True),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert "done: 6 steps in " in again.stdout
    assert list((elsewhere / "outputs").glob("*/*")) == [run_dir]
    assert "step 6/6  val/loss " in (run_dir / "run.log").read_text()


def _as_command(words: list[str]) -> list[str]:
    """The printed command as the shell runs it: `chargpt-train` is found on PATH."""
    if os.sep in words[0]:
        return words
    return [str(Path(sys.executable).parent / words[0]), *words[1:]]


def test_tensorboard_and_wandb_name_each_run_by_its_job_and_overrides(tmp_path, play_file):
    sweep_dir = tmp_path / "sweep"
    run(
        [
            "-m",
            "data=text",
            f"data.path={play_file}",
            *TINY,
            "trainer.max_steps=2",
            "model/size=tiny",
            "model.n_layer=1,2",
            "logger=many",
            f"hydra.sweep.dir={sweep_dir}",
        ]
    )
    for job, layers in (("0", 1), ("1", 2)):
        name = wandb_summary(sweep_dir / job)["name"]
        assert name.startswith(f"{job}-data=text,data.path={play_file},model/size=tiny,")
        assert name.endswith(f",model.n_layer={layers}")
        events = (sweep_dir / job / "tensorboard").glob("*/events.out.tfevents.*")
        # The same name as one folder: no `/`, and cut (this one is long) with a digest.
        assert {path.parent.name for path in events} == {folder_label(name)}
        assert folder_label(name).startswith(f"{job}-data=text,data.path=_")
        hparams = yaml.safe_load((sweep_dir / job / "csv" / "hparams.yaml").read_text())
        assert hparams["run_name"] == name  # the CSV logger's record of the run names it too


@pytest.mark.parametrize("quiet", [False, True])
def test_the_console_handler_writes_messages_to_stdout_and_warnings_to_stderr(quiet, monkeypatch):
    stdout, stderr = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stdout", stdout)  # looked up when written: rich's proxy, here
    monkeypatch.setattr(sys, "stderr", stderr)
    handler = ConsoleHandler()
    logger = logging.getLogger("chargpt.test_console")
    logger.addHandler(handler)
    monkeypatch.setattr(logger, "propagate", False)
    monkeypatch.setattr(logger, "level", logging.INFO)
    monkeypatch.setattr(logging.getLogger(), "handlers", [handler])
    try:
        set_console_quiet(quiet)
        logger.info("a message")
        logger.warning("a warning")
        logger.info("a job's line", extra={ALWAYS: True})
    finally:
        logger.removeHandler(handler)
    shown = [] if quiet else ["a message"]
    assert stdout.getvalue().splitlines() == [*shown, "a job's line"]
    assert stderr.getvalue().splitlines() == ["a warning"]


def test_log_always_reaches_a_quiet_console(monkeypatch, capsys):
    handler = ConsoleHandler(quiet=True)
    monkeypatch.setattr(logging.getLogger(), "handlers", [handler])
    monkeypatch.setattr(logging.getLogger("chargpt"), "level", logging.INFO)
    logging.getLogger("chargpt").info("hidden")
    log_always("shown")
    assert capsys.readouterr().out.splitlines() == ["shown"]
