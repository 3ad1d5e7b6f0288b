"""Samples at each validation, printed and logged, from a fixed prompt and seed."""

from __future__ import annotations

import lightning as L
from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger
from lightning.pytorch.utilities import rank_zero_only

from chargpt.errors import SettingError
from chargpt.model.generate import check_output_size, generate_text
from chargpt.model.gpt import WINDOWS
from chargpt.model.sampling import check_sampling_args
from chargpt.training.module import GPTLightningModule


class SampleCallback(L.Callback):
    """Generate from a fixed prompt with a fixed seed after each validation; print and log it.

    The same prompt and seed every time make successive samples differ only through the model.
    """

    def __init__(
        self,
        prompt: str = "\n",
        max_new_tokens: int = 200,
        temperature: float = 0.8,
        top_k: int | None = None,
        top_p: float | None = None,
        seed: int = 0,
        stop: str | None = None,
        num_samples: int = 1,
        window: str = "slide",
    ) -> None:
        super().__init__()
        if num_samples < 1:
            raise SettingError(f"callbacks.sample.num_samples={num_samples}: must be >= 1")
        if window not in WINDOWS:
            raise SettingError(
                f"callbacks.sample.window={window!r}: must be one of {', '.join(WINDOWS)}"
            )
        self.window = window
        self.stop = stop
        self.num_samples = num_samples
        self.prompt = prompt
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.top_k = top_k
        self.top_p = top_p
        self.seed = seed
        self.rows: list[list] = []

    def on_fit_start(self, trainer: L.Trainer, pl_module: GPTLightningModule) -> None:
        self.check(pl_module)

    def check(self, pl_module: GPTLightningModule) -> None:
        """Check the prompt and settings now, not at the first validation minutes later."""
        if not self.prompt:
            raise SettingError("callbacks.sample.prompt is empty: give at least one character")
        if self.stop is not None and (
            len(self.stop) != 1 or pl_module.tokenizer.unknown_characters(self.stop)
        ):
            raise SettingError(
                f"callbacks.sample.stop={self.stop!r}: must be one character of the corpus"
            )
        unknown = pl_module.tokenizer.unknown_characters(self.prompt)
        if unknown:
            raise SettingError(
                f"callbacks.sample.prompt={self.prompt!r} has characters the corpus lacks: "
                f"{', '.join(map(repr, unknown))}; choose a prompt from the corpus's characters"
            )
        try:
            check_sampling_args(
                pl_module.tokenizer.vocab_size, self.temperature, self.top_k, self.top_p
            )
            check_output_size(self.num_samples, len(self.prompt), self.max_new_tokens)
        except ValueError as error:
            raise SettingError(f"callbacks.sample.{error}") from None

    @rank_zero_only
    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: GPTLightningModule) -> None:
        if trainer.sanity_checking:
            return
        text = self.sample(pl_module)
        pl_module.print(f"\n--- sample at step {trainer.global_step} ---\n{text}\n---")
        self.rows.append([trainer.global_step, text])
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                # wandb tables are immutable: log the whole history as a new version each time.
                logger.log_text(key="samples", columns=["step", "text"], data=list(self.rows))
            elif isinstance(logger, TensorBoardLogger):
                logger.experiment.add_text("samples", text, trainer.global_step)

    def sample(self, pl_module: GPTLightningModule) -> str:
        was_training = pl_module.training
        pl_module.eval()
        texts = generate_text(
            pl_module.model,
            pl_module.tokenizer,
            self.prompt,
            self.max_new_tokens,
            temperature=self.temperature,
            top_k=self.top_k,
            top_p=self.top_p,
            stop=self.stop,
            seed=self.seed,
            num_samples=self.num_samples,
            window=self.window,
        )
        pl_module.train(was_training)
        if self.stop == "\n":  # one line each, as the corpus has them (names)
            return "\n".join(text.strip("\n") for text in texts)
        return "\n---\n".join(texts)
