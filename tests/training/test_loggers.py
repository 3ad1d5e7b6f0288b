import pytest

from chargpt.training.loggers import has_wandb_credentials, resolve_wandb_mode


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
