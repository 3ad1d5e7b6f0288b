"""Checkpoints that survive a moved run folder, and a validation at the last step."""

from __future__ import annotations

import functools
import os
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint


class RunCheckpoint(ModelCheckpoint):
    """Lightning's ModelCheckpoint, resumable after its run folder was moved, copied or renamed.

    A checkpoint records the folder it was saved in. Lightning forgets the best score and the
    last checkpoint when that folder differs, so a moved run writes `last-v1.ckpt` beside a stale
    `last.ckpt`, and its next best would be judged against nothing (and could delete a file in
    the original folder). Here every recorded path is read as the same file in this folder.
    """

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        # Always relocated, also when the folder looks unchanged: a checkpoint is untrusted, and
        # Lightning deletes the recorded paths it replaces (recursively).
        if self.dirpath is None:
            super().load_state_dict(state_dict)
            return
        relocate = functools.partial(_relocate, folder=self.dirpath)
        moved = dict(state_dict, dirpath=self.dirpath)
        for key in ("best_model_path", "kth_best_model_path", "last_model_path"):
            if key in moved:
                moved[key] = relocate(moved[key])
        best_k = moved.get("best_k_models")
        moved["best_k_models"] = {
            relocate(path): score
            for path, score in (best_k.items() if isinstance(best_k, dict) else ())
            if relocate(path)
        }
        super().load_state_dict(moved)


def _relocate(path: object, folder: str) -> str:
    """The checkpoint file `path` names, as a file directly in `folder` ("": none).

    Only a `.ckpt` file name is kept: a recorded path can never point outside the folder.
    """
    if not isinstance(path, str) or not path:
        return ""
    name = os.path.basename(os.path.normpath(path))
    if not name.endswith(".ckpt") or name in (".ckpt", os.curdir, os.pardir):
        return ""
    return os.path.join(folder, name)


class ValidateOnLastStep(L.Callback):
    """Validate when training reaches max_steps, even between val_check_interval points.

    Without it, a run whose max_steps is not a multiple of the interval ends unvalidated: its
    last steps count for neither the best checkpoint nor the reported loss.

    A run resumed from such a validation's checkpoint would log every step one too low:
    Lightning saves its logging step (`_batches_that_stepped`, no public API) before counting
    the last step and adds it back on resume only after validations it scheduled itself. With
    one optimizer it equals the optimizer step between batches, so it is realigned there.
    """

    def on_train_batch_start(self, trainer: L.Trainer, *args: object) -> None:
        epoch_loop = trainer.fit_loop.epoch_loop
        if epoch_loop._batches_that_stepped != trainer.global_step:
            epoch_loop._batches_that_stepped = trainer.global_step

    def on_train_batch_end(self, trainer: L.Trainer, *args: object) -> None:
        if 0 < trainer.max_steps <= trainer.global_step:
            # A stop request makes Lightning validate before it leaves the loop.
            trainer.should_stop = True
