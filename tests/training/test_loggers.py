import csv
import json
import subprocess
import sys
from pathlib import Path
from unittest.mock import MagicMock, Mock

import pytest
from helpers import TINY, run, wandb_summary
from lightning.pytorch.loggers import Logger, TensorBoardLogger, WandbLogger

from chargpt.errors import SettingError
from chargpt.training.loggers import (
    ResumableCSVLogger,
    close_loggers,
    describe_loggers,
    has_wandb_credentials,
    log_text_samples,
    logger_kind,
    resolve_wandb_mode,
    tensorboard_version,
    wandb_logger,
    wandb_run_id,
)


@pytest.fixture
def no_credentials(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    return tmp_path / "netrc"


def test_offline_without_credentials(no_credentials):
    assert not has_wandb_credentials()
    assert resolve_wandb_mode("auto") == "offline"


def test_online_with_an_api_key(no_credentials, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert resolve_wandb_mode("auto") == "online"


def test_online_with_a_netrc_login(no_credentials):
    no_credentials.write_text("machine api.wandb.ai\n  login user\n  password secret\n")
    no_credentials.chmod(0o600)
    assert resolve_wandb_mode("auto") == "online"


def test_wandb_mode_offline_wins_over_credentials(no_credentials, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert resolve_wandb_mode("auto") == "offline"


def test_explicit_mode_and_bad_mode(no_credentials):
    assert resolve_wandb_mode("disabled") == "disabled"
    with pytest.raises(ValueError, match=r"logger\.wandb\.mode='cloud'"):
        resolve_wandb_mode("cloud")


def metrics_rows(folder) -> list[tuple[int, str, str]]:
    with (folder / "csv" / "metrics.csv").open(newline="") as file:
        return [
            (int(row["step"]), row.get("train/loss", ""), row.get("val/loss", ""))
            for row in csv.DictReader(file)
        ]


def test_resumed_launch_forgets_the_rows_it_trains_again(tmp_path):
    """A run killed at step 9 after a checkpoint at step 6: the resumed launch logs 6 again."""
    killed = ResumableCSVLogger(tmp_path, name="csv", version="")
    for step in range(10):
        killed.log_metrics({"train/loss": step / 10}, step)
    killed.save()
    resumed = ResumableCSVLogger(tmp_path, name="csv", version="")
    resumed.log_metrics({"train/loss": 6.5}, 6)
    resumed.log_metrics({"val/loss": 1.5}, 7)  # a new column: Lightning rewrites the header
    resumed.save()
    assert metrics_rows(tmp_path) == [(s, str(s / 10), "") for s in range(6)] + [
        (6, "6.5", ""),
        (7, "", "1.5"),
    ]


def test_resumed_launch_keeps_every_earlier_row(tmp_path):
    """Ctrl+C at step 5 saves a checkpoint there: nothing logged before it is trained again."""
    first = ResumableCSVLogger(tmp_path, name="csv", version="")
    for step in range(5):
        first.log_metrics({"train/loss": 1.0}, step)
    first.save()
    resumed = ResumableCSVLogger(tmp_path, name="csv", version="")
    resumed.log_metrics({"train/loss": 2.0}, 5)
    resumed.save()
    assert [row[0] for row in metrics_rows(tmp_path)] == [0, 1, 2, 3, 4, 5]


class OtherLogger(Logger):
    """A logger of a kind the project does not know, with no folder."""

    name = version = "x"
    log_dir = None

    def log_metrics(self, metrics, step=None):
        pass

    def log_hyperparams(self, params, *args, **kwargs):
        pass


def test_each_logger_is_named_by_what_it_is(tmp_path):
    assert logger_kind(ResumableCSVLogger(tmp_path)) == "csv"
    assert logger_kind(TensorBoardLogger(tmp_path)) == "tensorboard"
    assert logger_kind(WandbLogger(save_dir=str(tmp_path), offline=True)) == "wandb"
    assert logger_kind(OtherLogger()) == "OtherLogger"


def test_the_report_names_each_loggers_folder(tmp_path):
    csv_logger = ResumableCSVLogger(tmp_path, name="csv", version="")
    tensorboard = TensorBoardLogger(tmp_path, name="tb", version="")
    assert describe_loggers([csv_logger, tensorboard, OtherLogger()]) == [
        f"csv:          {csv_logger.log_dir}",
        f"tensorboard:  {tensorboard.log_dir}",
    ]


def test_samples_go_to_the_loggers_that_show_text():
    wandb, tensorboard = Mock(spec=WandbLogger), Mock(spec=TensorBoardLogger)
    wandb.experiment = MagicMock()
    rows = [[10, "first"], [20, "second"]]
    log_text_samples([wandb, tensorboard, Mock(spec=ResumableCSVLogger)], rows)
    # In wandb's summary, not its history: a history table adds pseudo-metrics to the charts.
    wandb.log_text.assert_not_called()
    ((key, table), _) = wandb.experiment.summary.__setitem__.call_args
    assert key == "samples" and table.columns == ["step", "text"] and table.data == rows
    tensorboard.experiment.add_text.assert_called_once_with("samples", "second", 20)


def test_closing_writes_the_csv_and_finishes_the_wandb_run(tmp_path):
    import wandb

    csv_logger = ResumableCSVLogger(tmp_path, name="csv", version="")
    csv_logger.log_metrics({"train/loss": 1.0}, 0)
    run_logger = wandb_logger(save_dir=str(tmp_path / "wandb"), mode="offline")
    run_id = wandb_run_id([csv_logger, run_logger])
    assert run_id is not None and wandb.run is not None and wandb.run.id == run_id
    close_loggers([csv_logger, run_logger], exit_code=1)
    assert wandb.run is None
    assert metrics_rows(tmp_path) == [(0, "1.0", "")]
    (_, line) = describe_loggers([csv_logger, run_logger])
    assert line.startswith("wandb run:    ") and f"-{run_id}  (browse: wandb leet" in line


def test_closing_an_unstarted_wandb_logger_starts_no_run(tmp_path):
    import wandb

    close_loggers([wandb_logger(save_dir=str(tmp_path), mode="offline")], exit_code=0)
    assert wandb.run is None


# The documented metric keys (README "Metrics"): the same in every logger, and nothing else.
METRICS = {
    "train/loss",
    "val/loss",
    "val/bpc",
    "test/loss",
    "test/bpc",
    "lr",
    "perf/tokens_per_s",
    "perf/training_s",
}


def test_every_logger_gets_exactly_the_documented_metrics(tmp_path, play_file):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

    run_dir = tmp_path / "run"
    overrides = [
        "data=text",
        f"data.path={play_file}",
        *TINY,
        "trainer.max_steps=4",
        "trainer.val_every_n_steps=2",
        "trainer.log_every_n_steps=1",
        "seed=5",
    ]
    run([*overrides, "logger=many", f"hydra.run.dir={run_dir}"])
    with open(run_dir / "csv" / "metrics.csv") as file:
        assert set(next(csv.reader(file))) == METRICS | {"step"}  # step: the CSV's x column

    (events_dir,) = (run_dir / "tensorboard").iterdir()
    events = EventAccumulator(str(events_dir))
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    assert scalars == METRICS | {"hparams/best_val_loss", "hparams/test_loss"}
    # The HParams tab: the run's overrides (its settings) beside its best loss; no hp_metric.
    content = events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    swept = HParamsPluginData.FromString(content).session_start_info.hparams
    assert set(swept) == {override.split("=")[0] for override in overrides}  # not logger, paths
    # Valued as given: a config group by its choice's name, a key by the value the run used.
    assert swept["data"].string_value == "text"
    assert swept["model/size"].string_value == "tiny"
    assert swept["trainer.max_steps"].number_value == 4
    assert swept["seed"].number_value == 5
    best = events.Scalars("hparams/best_val_loss")[-1].value
    assert best == pytest.approx(min(e.value for e in events.Scalars("val/loss")))

    # wandb: trainer/global_step is Lightning's x-axis there; the samples table is in the
    # summary, never in the history (where it would chart as samples.nrows, samples.ncols).
    summary = wandb_summary(run_dir)["summary"]
    assert {key for key in summary if not key.startswith("_")} == METRICS | {
        "trainer/global_step",
        "samples",
    }
    assert {key for key in _wandb_history_keys(run_dir) if not key.startswith("_")} == METRICS | {
        "trainer/global_step"
    }


def _wandb_history_keys(run_dir) -> set[str]:
    (path,) = (run_dir / "wandb").glob("offline-run-*")
    out = subprocess.run(
        [Path(sys.executable).parent / "wandb", "leet", "inspect", "--json", str(path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    records = [json.loads(line) for line in out.stdout.splitlines() if '"history"' in line]
    return {key for r in records if r["type"] == "history" for key in r["history"]["item"]}


def test_a_run_gets_a_named_tensorboard_folder_unless_it_began_before_runs_were_named(tmp_path):
    assert tensorboard_version(tmp_path / "tensorboard", "0-model/size=tiny") == "0-model_size=tiny"
    old = tmp_path / "old" / "tensorboard"
    old.mkdir(parents=True)
    (old / "events.out.tfevents.1.host.1.0").write_bytes(b"")
    assert tensorboard_version(old, "0-model/size=tiny") == ""  # a resume goes on in one run


@pytest.mark.parametrize("quiet", ["maybe", 1, None])
def test_a_quiet_that_is_not_true_or_false_is_one_line(tmp_path, quiet):
    with pytest.raises(SettingError, match=r"^logger\.wandb\.quiet=.*: must be true or false$"):
        wandb_logger(save_dir=str(tmp_path), mode="offline", quiet=quiet)
