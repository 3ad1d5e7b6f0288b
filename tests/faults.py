"""Faults injected into a real `run.py` process, as callbacks (`+callbacks.NAME={_target_:…}`).

The tests put tests/ on the subprocess's PYTHONPATH so that run.py can import them.
"""

from __future__ import annotations

import os
import signal

import lightning as L


class SigtermAtTest(L.Callback):
    """SIGTERM to this process when the final test starts: training is over, last.ckpt saved."""

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        os.kill(os.getpid(), signal.SIGTERM)
