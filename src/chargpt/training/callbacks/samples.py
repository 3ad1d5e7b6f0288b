"""Samples at each validation, printed and logged, from a fixed prompt and seed."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import lightning as L
from lightning.pytorch.utilities import rank_zero_only

from chargpt.errors import SettingError
from chargpt.model.sampling import SAMPLING_KEYS, SamplingConfig, generate_text
from chargpt.training.loggers import log_text_samples
from chargpt.training.module import GPTLightningModule

LOG = logging.getLogger(__name__)
# Where the training config holds this callback's settings: its errors name the keys so.
CONFIG_KEY = "callbacks.sample"


@contextmanager
def _named_in_config() -> Iterator[None]:
    """Re-raise a sampling setting's error under the key the training config gives it."""
    try:
        yield
    except SettingError as error:
        raise SettingError(f"{CONFIG_KEY}.{error}") from None


class SampleCallback(L.Callback):
    """Generate from a fixed prompt with a fixed seed after each validation; print and log it.

    The same prompt and seed every time make successive samples differ only through the model.
    The settings are SamplingConfig's (`callbacks.sample.*` in the config).
    """

    def __init__(self, **settings: Any) -> None:
        super().__init__()
        unknown = sorted(set(settings) - set(SAMPLING_KEYS))
        if unknown:
            raise SettingError(
                f"{CONFIG_KEY}.{unknown[0]}: not a sampling setting; the settings are "
                f"{', '.join(SAMPLING_KEYS)}"
            )
        with _named_in_config():
            self.sampling = SamplingConfig(**settings)
        self.rows: list[list] = []

    def on_fit_start(self, trainer: L.Trainer, pl_module: GPTLightningModule) -> None:
        self.check(pl_module)

    def check(self, pl_module: GPTLightningModule) -> None:
        """Check the settings against the model now, not at the first validation minutes later."""
        with _named_in_config():
            self.sampling.check_vocabulary(pl_module.model.config.vocab_size, pl_module.tokenizer)
            self.sampling.check_output_size()

    @rank_zero_only
    def on_validation_end(self, trainer: L.Trainer, pl_module: GPTLightningModule) -> None:
        if trainer.sanity_checking:
            return
        text = self.sample(pl_module)
        LOG.info("--- sample at step %d ---\n%s\n---", trainer.global_step, text)
        self.rows.append([trainer.global_step, text])
        log_text_samples(trainer.loggers, self.rows)

    def sample(self, pl_module: GPTLightningModule) -> str:
        was_training = pl_module.training
        pl_module.eval()
        texts = generate_text(pl_module.model, pl_module.tokenizer, self.sampling)
        pl_module.train(was_training)
        if self.sampling.stop == "\n":  # one line each, as the corpus has them (names)
            return "\n".join(text.strip("\n") for text in texts)
        return "\n---\n".join(texts)
