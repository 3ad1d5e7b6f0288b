"""Each validation's loss on the console and in run.log, as one line."""

from __future__ import annotations

import logging
import math

import lightning as L
from lightning.pytorch.utilities import rank_zero_only

LOG = logging.getLogger(__name__)
VAL_LOSS_KEY = "val/loss"
VAL_BPC_KEY = "val/bpc"


class ValidationReport(L.Callback):
    """`step 250/1000  val/loss 1.9876  bpc 2.868  best` after each validation of training.

    The progress bar shows only the latest loss, and only while it is drawn; these lines stay,
    in the terminal's scroll-back and in the run's log. `best`: lower than the checkpoint
    callback's best so far (which it updates after this, and which a resumed run restores).
    """

    @rank_zero_only
    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        loss = trainer.callback_metrics.get(VAL_LOSS_KEY)
        if trainer.sanity_checking or loss is None:
            return
        loss = float(loss)
        improved = loss < _best_so_far(trainer)
        bpc = trainer.callback_metrics.get(VAL_BPC_KEY)
        LOG.info(
            "step %s  %s %.4f%s%s",
            f"{trainer.global_step:,}/{trainer.max_steps:,}",
            VAL_LOSS_KEY,
            loss,
            "" if bpc is None else f"  bpc {float(bpc):.3f}",
            "  best" if improved else "",
        )


def _best_so_far(trainer: L.Trainer) -> float:
    checkpoint = trainer.checkpoint_callback
    best = getattr(checkpoint, "best_model_score", None)
    return math.inf if best is None else float(best)
