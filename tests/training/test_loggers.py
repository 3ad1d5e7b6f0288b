import csv

import pytest

from chargpt.training.loggers import (
    ResumableCSVLogger,
    has_wandb_credentials,
    resolve_wandb_mode,
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
