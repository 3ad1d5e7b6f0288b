"""RunCheckpoint: a moved or copied run keeps its checkpoints' scores and names."""

from __future__ import annotations

import pytest
import torch

from chargpt.training.callbacks.checkpoints import RunCheckpoint


def test_a_moved_checkpoint_callback_keeps_its_scores_under_the_new_folder(tmp_path):
    old, new = tmp_path / "cluster" / "checkpoints", tmp_path / "home" / "checkpoints"
    saved = RunCheckpoint(dirpath=old, filename="best", monitor="val/loss", save_last=True)
    saved.best_model_path = str(old / "best.ckpt")
    saved.best_model_score = torch.tensor(1.5)
    saved.best_k_models = {str(old / "best.ckpt"): torch.tensor(1.5)}
    saved.last_model_path = str(old / "last.ckpt")
    state = saved.state_dict()
    state["kth_best_model_path"] = "/etc/passwd"  # never a file outside the run's folder

    moved = RunCheckpoint(dirpath=new, filename="best", monitor="val/loss", save_last=True)
    moved.load_state_dict(state)
    assert moved.best_model_path == str(new / "best.ckpt")
    assert moved.last_model_path == str(new / "last.ckpt")
    assert moved.best_k_models == {str(new / "best.ckpt"): torch.tensor(1.5)}
    assert moved.kth_best_model_path == ""
    assert float(moved.best_model_score) == 1.5  # a worse model cannot replace best.ckpt


@pytest.mark.parametrize("dirpath", ["same", None])
def test_recorded_paths_never_leave_the_checkpoint_folder(tmp_path, dirpath):
    """Lightning deletes the last checkpoint it replaces: a crafted path must not name a folder."""
    folder = tmp_path / "run" / "checkpoints"
    precious = tmp_path / "precious"
    precious.mkdir()
    callback = RunCheckpoint(dirpath=folder, filename="best", monitor="val/loss", save_last=True)
    crafted = {
        "dirpath": callback.dirpath if dirpath == "same" else None,
        "best_model_score": None,
        "best_model_path": "",
        "last_model_path": f"{callback.dirpath}/../../precious",
        "kth_best_model_path": f"{callback.dirpath}/../../precious/x.ckpt",
        "best_k_models": {f"{callback.dirpath}/../../precious": 1.0},
    }
    if dirpath is None:
        del crafted["dirpath"]
    callback.load_state_dict(crafted)
    assert callback.last_model_path == "" and callback.best_k_models == {}
    assert callback.kth_best_model_path == str(folder / "x.ckpt")
