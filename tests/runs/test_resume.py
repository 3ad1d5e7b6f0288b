"""Resuming: the command line is completed from the run's folder; the run continues unbroken."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from conftest import PLAY
from helpers import (
    PROJECT_ROOT,
    RESUMABLE,
    TINY,
    csv_metric,
    run,
    run_env,
    start,
    wait_for,
    wandb_summary,
)

from chargpt.model.parameters import training_flops_per_token
from chargpt.runs.checkpoint import load_checkpoint
from chargpt.runs.commands import TRAIN, command
from chargpt.runs.compose import compose_config
from chargpt.runs.files import run_lock
from chargpt.runs.renamed import RenamedKeyError
from chargpt.runs.resume import ResumeError, check_targets, check_write_locations, resume_arguments


def fake_run(folder: Path, overrides: list[str]) -> Path:
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    (folder / "checkpoints").mkdir()
    last = folder / "checkpoints" / "last.ckpt"
    last.write_bytes(b"weights")
    return last


def test_last_resumes_the_newest_run_with_its_overrides(tmp_path):
    outputs = tmp_path / "outputs"
    fake_run(outputs / "2026-01-01" / "09-00-00.000001", ["model/size=tiny"])
    newest = outputs / "2026-01-02" / "08-00-00.000001"
    last = fake_run(newest, ["model/size=medium", "trainer.max_steps=100"])
    args = resume_arguments(["ckpt_path=last", "trainer.max_steps=200"], outputs_dir=outputs)
    assert args[:3] == ["model/size=medium", "trainer.max_steps=200", f"ckpt_path={last}"]
    assert f"hydra.run.dir={newest}" in args
    # Hydra's record of the resumed launch goes beside the original, not over it.
    (subdir,) = [a for a in args if a.startswith("hydra.output_subdir=")]
    assert subdir.startswith("hydra.output_subdir=.hydra/resumed-")


def test_explicit_checkpoint_resumes_its_own_run(tmp_path):
    last = fake_run(tmp_path / "run", ["data=names"])
    args = resume_arguments([f"ckpt_path={last}"], outputs_dir=tmp_path / "none")
    assert "data=names" in args and f"hydra.run.dir={tmp_path / 'run'}" in args


def test_checkpoint_from_elsewhere_starts_a_new_folder(tmp_path):
    loose = tmp_path / "loose.ckpt"
    loose.write_bytes(b"weights")
    assert resume_arguments([f"ckpt_path={loose}"]) == [f"ckpt_path={loose}"]


def test_no_ckpt_path_leaves_the_command_alone():
    assert resume_arguments(["-m", "model.n_layer=2,4"]) == ["-m", "model.n_layer=2,4"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ckpt_path=last"], "ckpt_path=last: no run under"),
        (["ckpt_path=missing.ckpt"], "ckpt_path=missing.ckpt: no such checkpoint file"),
        (["-m", "ckpt_path=last"], "ckpt_path cannot be used with -m"),
    ],
)
def test_resume_errors_name_the_problem(tmp_path, args, message):
    with pytest.raises(ResumeError, match=message):
        resume_arguments(args, outputs_dir=tmp_path)


def test_bad_resume_is_one_line_and_leaves_the_run_untouched(tmp_path, play_file):
    result = run(["ckpt_path=nowhere/last.ckpt"], cwd=tmp_path, check=False, full_error=False)
    assert result.returncode != 0
    assert result.stderr.strip() == "error: ckpt_path=nowhere/last.ckpt: no such checkpoint file"


def test_resumed_run_equals_an_uninterrupted_one(tmp_path, play_file):
    data = ["data=text", f"data.path={play_file}"]
    unbroken = tmp_path / "unbroken"
    run([*data, *RESUMABLE, "trainer.max_steps=12", f"hydra.run.dir={unbroken}"])
    halves = tmp_path / "halves"
    run([*data, *RESUMABLE, "trainer.max_steps=6", f"hydra.run.dir={halves}"])
    # Only the new settings: the run's own overrides come from its folder.
    result = run(["ckpt_path=last", "trainer.max_steps=12", f"hydra.run.dir={halves}"])
    assert f"resume:   from {halves / 'checkpoints' / 'last.ckpt'} at step 6" in result.stdout

    expected = csv_metric(unbroken, "train/loss")
    assert len(expected) == 12
    assert csv_metric(halves, "train/loss") == expected  # identical, not merely close
    assert csv_metric(halves, "val/loss")[-1] == csv_metric(unbroken, "val/loss")[-1]
    record = json.loads((halves / "run.json").read_text())
    assert record["status"] == "finished" and record["global_step"] == 12
    assert record["overrides"][:2] == data  # the original launch's overrides are kept
    assert record["tokens_seen"] == json.loads((unbroken / "run.json").read_text())["tokens_seen"]
    # One wandb run, resumed by id: both launches logged into it.
    runs = list((halves / "wandb").glob("offline-run-*"))
    assert len(runs) == 2
    assert {wandb_summary(halves, r.name)["run_id"] for r in runs} == {record["wandb_id"]}


def test_a_copied_run_resumes_twice_as_one_unbroken_run(tmp_path, play_file):
    data = ["data=text", f"data.path={play_file}", "logger=csv"]
    unbroken = tmp_path / "unbroken"
    run([*data, *RESUMABLE, "trainer.max_steps=12", f"hydra.run.dir={unbroken}"])
    original = tmp_path / "cluster" / "run"
    run([*data, *RESUMABLE, "trainer.max_steps=4", f"hydra.run.dir={original}"])
    before = {p.name: p.stat().st_mtime_ns for p in (original / "checkpoints").iterdir()}
    copy = tmp_path / "home" / "run"  # as copied back from a cluster
    shutil.copytree(original, copy)
    for max_steps in (8, 12):
        run(["ckpt_path=last", f"trainer.max_steps={max_steps}", f"hydra.run.dir={copy}"])
        last = torch.load(copy / "checkpoints" / "last.ckpt", weights_only=True)
        assert last["global_step"] == max_steps  # the newest step, under its own name

    assert sorted(p.name for p in (copy / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]
    assert csv_metric(copy, "train/loss") == csv_metric(unbroken, "train/loss")
    best = torch.load(copy / "checkpoints" / "best.ckpt", weights_only=True)
    expected = torch.load(unbroken / "checkpoints" / "best.ckpt", weights_only=True)
    assert best["global_step"] == expected["global_step"]
    # The original folder is left as it was.
    assert {p.name: p.stat().st_mtime_ns for p in (original / "checkpoints").iterdir()} == before


def test_a_token_budget_derives_the_steps_and_survives_a_resume(tmp_path, play_file):
    data = ["data=text", f"data.path={play_file}", "logger=csv"]
    # The schedule follows the derived length here: RESUMABLE's fixed decay_steps is undone.
    budgeted = [o for o in RESUMABLE if not o.startswith("scheduler.decay_steps=")]
    per_step = 8 * 16  # RESUMABLE's batch x context
    unbroken = tmp_path / "unbroken"
    run([*data, *budgeted, f"trainer.max_tokens={12 * per_step}", f"hydra.run.dir={unbroken}"])
    # A run launched with that budget and stopped at step 6: its folder names the 12-step budget.
    halves = tmp_path / "halves"
    run([*data, *budgeted, f"trainer.max_tokens={6 * per_step}", f"hydra.run.dir={halves}"])
    for name in (".hydra/overrides.yaml", "run.json"):
        path = halves / name
        path.write_text(path.read_text().replace(f"={6 * per_step}", f"={12 * per_step}"))
    run(["ckpt_path=last", f"hydra.run.dir={halves}"])  # the budget comes from the folder

    model, _ = load_checkpoint(halves / "checkpoints" / "last.ckpt")
    for folder in (unbroken, halves):
        record = json.loads((folder / "run.json").read_text())
        assert record["global_step"] == 12 and record["tokens_seen"] == 12 * per_step
        assert record["flops"] == 12 * per_step * training_flops_per_token(model)
    # After the resume the learning rate follows the unbroken run's 12-step schedule, step for
    # step (the first launch had decayed over its own 6).
    rates = csv_metric(unbroken, "lr")
    assert len(rates) == 12 and rates[7] != rates[11]
    assert csv_metric(halves, "lr")[7:] == rates[7:]


@pytest.mark.parametrize(
    ("signum", "accumulate"),
    [(signal.SIGINT, 1), (signal.SIGTERM, 2)],
    ids=["ctrl-c", "sigterm-accumulating"],
)
def test_signal_saves_a_checkpoint_and_resuming_equals_an_unbroken_run(
    tmp_path, play_file, signum, accumulate
):
    steady = [
        *RESUMABLE,
        "scheduler.decay_steps=1000",
        f"trainer.accumulate_grad_batches={accumulate}",
    ]
    data = ["data=text", f"data.path={play_file}", "logger=csv"]
    run_dir = tmp_path / "run"
    last = run_dir / "checkpoints" / "last.ckpt"
    endless = ["trainer.max_steps=100000", "trainer.val_every_n_steps=2"]
    process = start([*data, *steady, *endless, f"hydra.run.dir={run_dir}"])
    try:
        wait_for(last, process)  # training is under way: it validated and saved once
        saved_before = last.stat().st_mtime_ns
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == {signal.SIGINT: 130, signal.SIGTERM: 143}[signum], stderr[-3000:]
    name = {signal.SIGINT: "Ctrl+C", signal.SIGTERM: "SIGTERM"}[signum]
    assert (
        f"Interrupted ({name}); saved {last}.\nResume with: {command(TRAIN)} ckpt_path={last}"
        in stderr
    )
    assert "Traceback" not in stderr
    assert last.stat().st_mtime_ns != saved_before  # saved at the interruption, not earlier
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "interrupted" and record["error"] == f"interrupted ({name})"
    step = torch.load(last, weights_only=True)["global_step"]
    assert step == record["global_step"] > 0

    run([f"ckpt_path={last}", f"trainer.max_steps={step + 3}"])
    unbroken = tmp_path / "unbroken"
    run([*data, *steady, f"trainer.max_steps={step + 3}", f"hydra.run.dir={unbroken}"])
    assert csv_metric(run_dir, "train/loss") == csv_metric(unbroken, "train/loss")
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "finished" and record["global_step"] == step + 3


class RunsCode:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_resume_refuses_a_checkpoint_that_would_run_code(tmp_path, play_file):
    evil = tmp_path / "evil.ckpt"
    torch.save({"hyper_parameters": RunsCode(), "state_dict": {}}, evil)
    line = one_line_resume_error(tmp_path, play_file, evil)
    assert "not a readable checkpoint" in line
    assert not (tmp_path / "PWNED").exists()
    assert not (tmp_path / "r").exists()  # the new folder for the loose checkpoint is gone again


@pytest.mark.slow  # torch.compile on the CPU: a minute
def test_a_run_resumes_with_compile_toggled(tmp_path, play_file):
    """compile is how a launch trains, not what: an old run, saved with model.compile, resumes."""
    data = ["data=text", f"data.path={play_file}", "logger=csv"]
    run_dir = tmp_path / "run"
    run([*data, *RESUMABLE, "trainer.max_steps=6", f"hydra.run.dir={run_dir}"])
    # As written before compile and the validation interval moved to their own keys.
    overrides = run_dir / ".hydra" / "overrides.yaml"
    old = [
        "model.compile=false" if o.startswith("trainer.max_steps=") else o
        for o in yaml.safe_load(overrides.read_text())
    ]
    old = [o.replace("trainer.val_every_n_steps=", "trainer.val_check_interval=") for o in old]
    overrides.write_text(yaml.safe_dump(old))
    last = run_dir / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(last, weights_only=True)
    checkpoint["hyper_parameters"]["model"]["compile"] = False
    torch.save(checkpoint, last)

    run(["ckpt_path=last", "trainer.max_steps=9", "compile=true", f"hydra.run.dir={run_dir}"])
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "finished" and record["global_step"] == 9
    assert len(csv_metric(run_dir, "train/loss")) == 9


def test_an_old_run_folders_moved_keys_are_replayed_under_their_new_names(tmp_path):
    run_dir = tmp_path / "run"
    fake_run(run_dir, ["model/size=tiny", "model.compile=true", "trainer.val_check_interval=6"])
    args = resume_arguments(["ckpt_path=last", f"hydra.run.dir={run_dir}"])
    assert args[:3] == ["model/size=tiny", "compile=true", "trainer.val_every_n_steps=6"]


def test_an_old_key_in_a_run_folder_gives_way_to_its_new_key_on_the_command_line(tmp_path):
    """The folder's line would be refused on its own (it reads the environment)."""
    run_dir = tmp_path / "run"
    fake_run(run_dir, ["model/size=tiny", "model.compile=${oc.env:HOME}"])
    with pytest.raises(ResumeError, match="interpolates"):
        resume_arguments(["ckpt_path=last", f"hydra.run.dir={run_dir}"])
    args = resume_arguments(["ckpt_path=last", f"hydra.run.dir={run_dir}", "compile=false"])
    assert "compile=false" in args and not any("oc.env" in arg for arg in args)


@pytest.mark.parametrize(
    ("override", "new"),
    [
        ("model.compile=true", "compile=true"),
        ("trainer.val_check_interval=5", "trainer.val_every_n_steps=5"),
    ],
)
def test_a_moved_key_on_the_command_line_is_refused_naming_its_new_key(override, new):
    old_key, new_key = override.partition("=")[0], new.partition("=")[0]
    with pytest.raises(RenamedKeyError) as error:
        resume_arguments(["-m", override.replace("=", "=1,")])  # sweeps too
    assert str(error.value).startswith(f"{old_key} is now {new_key} (")
    with pytest.raises(RenamedKeyError, match=re.escape(f"): write {new}")):
        resume_arguments([override])


def test_run_py_names_the_new_key_of_a_moved_one_in_one_line(tmp_path):
    result = run(["model.compile=true"], cwd=tmp_path, check=False, full_error=False)
    assert result.returncode != 0
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: model.compile is now compile (")
    assert line.endswith("): write compile=true")


def test_resume_refuses_another_model(tmp_path, play_file, trained_checkpoint):
    line = one_line_resume_error(tmp_path, play_file, trained_checkpoint)
    assert "holds another model (model.n_layer: 1 -> 2" in line


def one_line_resume_error(tmp_path: Path, play_file: Path, ckpt: Path) -> str:
    result = run(
        [
            *TINY,
            "data=text",
            f"data.path={play_file}",
            f"ckpt_path={ckpt}",
            f"hydra.run.dir={tmp_path}/r",
        ],
        cwd=tmp_path,
        check=False,
        full_error=False,
    )
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    return line


OPENS_A_FILE = "+callbacks.x={_target_:builtins.open,file:PWNED,mode:w}"


@pytest.mark.parametrize(
    ("override", "problem"),
    [
        (OPENS_A_FILE, "adds or deletes a config node"),
        ("callbacks.sample._target_=builtins.exec", "names code to run"),
        ("trainer.plugins=[{_target_:builtins.print}]", "names code to run"),
        ("hydra.job.chdir=true", "changes Hydra's own settings"),
        ("hydra.sweep.dir=/tmp/elsewhere", "changes Hydra's own settings"),
        ("hydra.callbacks.x={_target_:builtins.print}", "changes Hydra's own settings"),
        ("~callbacks.nonfinite_loss", "adds or deletes a config node"),
        ("callbacks@other=default", "adds or deletes a config node"),
        ("callbacks=../../../tmp/evil", "chooses a config the project does not have"),
        ("experiment=[smoke,names]", "chooses a config the project does not have"),
        ("paths.output_dir=/tmp/elsewhere", "moves where the run writes"),
        ("callbacks.model_checkpoint.dirpath=/tmp/x", "moves where the run writes"),
        ("model.n_layer=1,2", "is a sweep"),
        ("logger.csv={save_dir:/tmp/elsewhere}", "moves where the run writes"),
        ("callbacks.model_checkpoint={dirpath:/tmp/x}", "moves where the run writes"),
        ("seed=${oc.env:HOME}", "interpolates"),
        ("tags=[${oc.env:AWS_SECRET_ACCESS_KEY}]", "interpolates"),
        (r"tags=[$\{oc.env:AWS_SECRET_ACCESS_KEY\}]", "interpolates"),  # Hydra's escapes
        ("trainer.logger=[{save_dir:/tmp/x}]", "moves where the run writes"),
    ],
)
def test_a_run_folder_cannot_run_code_or_write_elsewhere(tmp_path, override, problem):
    fake_run(tmp_path / "run", ["model/size=tiny", override])
    with pytest.raises(ResumeError, match=re.escape(problem)) as error:
        resume_arguments(["ckpt_path=last", f"hydra.run.dir={tmp_path / 'run'}"])
    assert "overrides.yaml holds " + repr(override) in str(error.value)


def test_a_run_folder_may_choose_the_projects_options(tmp_path):
    run_dir = tmp_path / "run"
    replayed = [
        "model/size=tiny",
        "experiment=smoke",
        "data=text",
        "data.path=/data/my corpus.txt",
        "data.splits=[0.8,0.1,0.1]",
        "hparams_search=null",
        "optimizer.lr=1e-3",
        "logger.wandb.name=myrun",
        "logger.tensorboard.name=tb2",
        "logger.csv.version=v1",
        "paths.data_dir=/data/corpora",
        "tags=[a,b]",
    ]
    fake_run(run_dir, replayed)
    args = resume_arguments(["ckpt_path=last", f"hydra.run.dir={run_dir}"])
    assert args[: len(replayed)] == replayed


def test_the_command_line_may_replace_what_a_folder_may_not_set(tmp_path):
    run_dir = tmp_path / "run"
    fake_run(run_dir, ["paths.output_dir=/tmp/elsewhere"])
    mine = f"paths.output_dir={run_dir}"
    args = resume_arguments(["ckpt_path=last", f"hydra.run.dir={run_dir}", mine])
    assert mine in args and "paths.output_dir=/tmp/elsewhere" not in args


def test_unreadable_overrides_file_is_one_clear_error(tmp_path):
    run_dir = tmp_path / "run"
    fake_run(run_dir, [])
    (run_dir / ".hydra" / "overrides.yaml").write_text("{not: a list}")
    with pytest.raises(ResumeError, match="is not a list of overrides"):
        resume_arguments(["ckpt_path=last", f"hydra.run.dir={run_dir}"])


def test_a_resumed_config_instantiates_only_the_projects_targets(tmp_path):
    check_targets(compose_config(["experiment=smoke"], tmp_path))
    cfg = compose_config(["+callbacks.x={_target_:builtins.open,file:PWNED}"], tmp_path)
    with pytest.raises(ResumeError, match=re.escape("callbacks.x._target_=builtins.open")):
        check_targets(cfg)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("finished")
    corpus = folder / "play.txt"
    corpus.write_text(PLAY * 40, encoding="utf-8")
    run_dir = folder / "run"
    run(["data=text", f"data.path={corpus}", "logger=csv", *TINY, f"hydra.run.dir={run_dir}"])
    return run_dir


@pytest.mark.parametrize(
    "override",
    [OPENS_A_FILE, "hydra.output_subdir=../../outside"],
    ids=["opens-a-file", "hydra-writes-outside"],
)
def test_resume_refuses_a_tampered_run_folder(tmp_path, finished_run, override):
    run_dir = tmp_path / "shared" / "run"
    shutil.copytree(finished_run, run_dir)
    overrides = run_dir / ".hydra" / "overrides.yaml"
    overrides.write_text(yaml.safe_dump([*yaml.safe_load(overrides.read_text()), override]))
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    result = run(
        ["ckpt_path=last", f"hydra.run.dir={run_dir}", "trainer.max_steps=30"],
        cwd=tmp_path,
        check=False,
        full_error=False,
    )
    assert result.returncode != 0
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: {overrides} holds {override!r}")
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_sigterm_during_the_final_test_points_at_the_last_checkpoint(tmp_path, play_file):
    run_dir = tmp_path / "run"
    fault = "+callbacks.fault={_target_:faults.SigtermAtTest}"
    args = [
        "data=text",
        f"data.path={play_file}",
        *TINY,
        "data.eval_batch_size=1",
        "logger=csv",
        fault,
    ]
    env = run_env(full_error=False) | {"PYTHONPATH": str(PROJECT_ROOT / "tests")}
    result = subprocess.run(
        [sys.executable, "run.py", *args, f"hydra.run.dir={run_dir}"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    last = run_dir / "checkpoints" / "last.ckpt"
    assert result.returncode == 143, result.stderr[-3000:]
    assert torch.load(last, weights_only=True)["global_step"] == 15
    assert (
        f"Interrupted (SIGTERM); nothing new was saved, {last} holds the run at step 15.\n"
        f"Resume with: {command(TRAIN)} ckpt_path={last}"
    ) in result.stderr
    assert "no checkpoint was saved" not in result.stderr


def test_a_second_launch_into_a_busy_run_folder_is_refused(tmp_path, finished_run):
    run_dir = tmp_path / "run"
    shutil.copytree(finished_run, run_dir)
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    with run_lock(run_dir):  # as a first resume, still training, holds it
        result = run(
            ["ckpt_path=last", f"hydra.run.dir={run_dir}", "trainer.max_steps=30"],
            check=False,
            full_error=False,
        )
    assert result.returncode == 1
    line = result.stderr.strip().splitlines()[-1]
    assert line == (
        f"error: {run_dir} is being trained by another process right now; wait for it to end "
        "(or stop it: it saves last.ckpt) and resume then"
    )
    after = {p: p.read_bytes() for p in run_dir.rglob("*") if p in before}
    changed = [p for p in before if after.get(p) != before[p] and ".hydra" not in p.parts]
    # run.log only grows: the refused launch's line is appended to what the run wrote.
    log = run_dir / "run.log"
    assert [p for p in changed if p != log] == []
    assert after[log].startswith(before[log]) and b"being trained by another" in after[log]
    assert not list((run_dir / "csv").glob("*.csv.*"))
    # Once the first launch is done, the resume goes ahead.
    run(["ckpt_path=last", f"hydra.run.dir={run_dir}", "trainer.max_steps=18"])
    assert json.loads((run_dir / "run.json").read_text())["global_step"] == 18


@pytest.mark.parametrize("content", ["[1, 2]", "{not json", '{"global_step": "x"}'])
def test_a_corrupt_run_json_does_not_block_a_resume(tmp_path, finished_run, content):
    run_dir = tmp_path / "run"
    shutil.copytree(finished_run, run_dir)
    (run_dir / "run.json").write_text(content)
    result = run(["ckpt_path=last", f"hydra.run.dir={run_dir}", "trainer.max_steps=18"])
    assert f"warning: {run_dir / 'run.json'} is unreadable" in result.stderr
    assert (run_dir / "run.json.unreadable").read_text() == content  # kept, not lost
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "finished" and record["global_step"] == 18


def resume_a_tampered_copy(tmp_path, finished_run, tamper) -> tuple[Path, object]:
    """Copy the finished run, change its last.ckpt with `tamper`, and resume it (as a user)."""
    run_dir = tmp_path / "run"
    shutil.copytree(finished_run, run_dir)
    last = run_dir / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(last, weights_only=True)
    tamper(checkpoint)
    torch.save(checkpoint, last)
    result = run(
        ["ckpt_path=last", f"hydra.run.dir={run_dir}", "trainer.max_steps=30"],
        check=False,
        full_error=False,
    )
    return last, result


def test_a_crafted_optimizer_state_is_refused_before_it_crashes_the_kernel(tmp_path, finished_run):
    def wrong_shape(checkpoint: dict) -> None:
        state = checkpoint["optimizer_states"][0]["state"]
        next(iter(state.values()))["exp_avg"] = torch.zeros(2)

    last, result = resume_a_tampered_copy(tmp_path, finished_run, wrong_shape)
    assert result.returncode == 1  # was a segmentation fault in fused AdamW (139)
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: {last}: its training state does not fit (the optimizer state")


def test_an_alias_bomb_in_overrides_yaml_is_refused_at_once(tmp_path):
    run_dir = tmp_path / "run"
    fake_run(run_dir, [])
    lines = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    lines += [
        f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]" for i in range(1, 12)
    ]
    (run_dir / ".hydra" / "overrides.yaml").write_text("\n".join(lines) + "\n")  # 5**11 x 10
    with pytest.raises(ResumeError, match="is not a list of overrides"):
        resume_arguments(["ckpt_path=last", f"hydra.run.dir={run_dir}"])


def test_a_link_out_of_the_run_folder_is_refused(tmp_path):
    run_dir = tmp_path / "run"
    fake_run(run_dir, [])
    (tmp_path / "victim").mkdir()
    (run_dir / "csv").symlink_to(tmp_path / "victim")
    (run_dir / "wandb").mkdir()
    (run_dir / "wandb" / "latest-run").symlink_to(run_dir / "checkpoints")  # inside: fine
    with pytest.raises(ResumeError, match=r"is a link to .*victim, outside the run folder"):
        resume_arguments(["ckpt_path=last", f"hydra.run.dir={run_dir}"])
    (run_dir / "csv").unlink()
    resume_arguments(["ckpt_path=last", f"hydra.run.dir={run_dir}"])


def test_ddp_processes_keep_the_output_subdir_lightning_gives_them(tmp_path):
    run_dir = tmp_path / "run"
    fake_run(run_dir, [])
    args = ["ckpt_path=last", f"hydra.run.dir={run_dir}", "hydra.output_subdir=null"]
    completed = resume_arguments(args)
    assert [a for a in completed if a.startswith("hydra.output_subdir=")] == [
        "hydra.output_subdir=null"
    ]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("logger.csv.save_dir=/tmp/elsewhere", "logger.csv.save_dir=/tmp/elsewhere: a resumed"),
        ("callbacks.model_checkpoint.filename=../best", "filename=../best: must be a plain name"),
        ("trainer.default_root_dir=/tmp/x", "trainer.default_root_dir=/tmp/x: a resumed run"),
        ("logger.csv.name=../x", "logger.csv.name=../x: must be a plain name"),
    ],
)
def test_a_resumed_config_writes_only_inside_its_folder(tmp_path, override, message):
    check_write_locations(compose_config(["logger=many"], tmp_path))
    with pytest.raises(ResumeError, match=re.escape(message)):
        check_write_locations(compose_config([override], tmp_path))


def test_a_part_lightning_cannot_restore_is_one_line_naming_the_checkpoint(tmp_path, finished_run):
    def bad_loop_state(checkpoint: dict) -> None:
        checkpoint["loops"]["fit_loop"]["epoch_loop.batch_progress"] = "x"

    last, result = resume_a_tampered_copy(tmp_path, finished_run, bad_loop_state)
    assert result.returncode == 1
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith(f"error: resuming from {last} failed before training started (")
    assert "Traceback" not in result.stderr
