import pytest
import torch

from chargpt.checkpoint import CheckpointError, load_checkpoint
from chargpt.training.module import GPTLightningModule


def test_checkpoint_alone_rebuilds_the_trained_model(trained_checkpoint):
    model, tokenizer = load_checkpoint(trained_checkpoint)
    module = GPTLightningModule.load_from_checkpoint(trained_checkpoint, weights_only=True)
    idx = torch.tensor([tokenizer.encode("ALL:\nSpeak")])
    module.eval()
    torch.testing.assert_close(model(idx)[0], module(idx)[0])
    assert not model.training
    assert tokenizer == module.tokenizer


def test_hyperparameters_are_plain_data(trained_checkpoint):
    hparams = torch.load(trained_checkpoint, weights_only=True)["hyper_parameters"]
    assert set(hparams) == {"model", "optimizer", "scheduler", "tokenizer"}
    assert hparams["model"]["n_layer"] == 1 and hparams["model"]["tie_weights"] is True
    assert isinstance(hparams["tokenizer"]["chars"], list)


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "nope.ckpt")


def test_not_a_checkpoint(tmp_path):
    path = tmp_path / "notes.ckpt"
    path.write_text("hello")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(path)


def test_truncated_checkpoint(tmp_path, trained_checkpoint):
    path = tmp_path / "cut.ckpt"
    path.write_bytes(trained_checkpoint.read_bytes()[:2000])
    with pytest.raises(CheckpointError, match="truncated, corrupt"):
        load_checkpoint(path)


class RunsCode:
    def __reduce__(self):
        return (exec, ("import pathlib; pathlib.Path('PWNED').write_text('x')",))


def test_pickled_code_is_refused_and_never_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.ckpt"
    torch.save({"hyper_parameters": RunsCode(), "state_dict": {}}, path)
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(path)
    assert not (tmp_path / "PWNED").exists()


def test_weights_that_do_not_fit_the_config(tmp_path, trained_checkpoint):
    checkpoint = torch.load(trained_checkpoint, weights_only=True)
    checkpoint["hyper_parameters"]["model"]["n_layer"] = 2
    path = tmp_path / "mismatch.ckpt"
    torch.save(checkpoint, path)
    with pytest.raises(CheckpointError, match="weights do not fit its model config"):
        load_checkpoint(path)


def test_a_torch_file_that_is_not_ours(tmp_path):
    path = tmp_path / "other.ckpt"
    torch.save({"weights": torch.zeros(2)}, path)
    with pytest.raises(CheckpointError, match="not a chargpt checkpoint"):
        load_checkpoint(path)
