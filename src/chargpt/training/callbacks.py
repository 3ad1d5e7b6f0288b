"""Callbacks: a text sample at every validation, so progress can be read as well as plotted."""

from __future__ import annotations

import lightning as L
from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger
from lightning.pytorch.utilities import rank_zero_only

from chargpt.generate import generate_text
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
    ) -> None:
        super().__init__()
        self.prompt = prompt
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.top_k = top_k
        self.top_p = top_p
        self.seed = seed
        self.rows: list[list] = []

    def on_fit_start(self, trainer: L.Trainer, pl_module: GPTLightningModule) -> None:
        """Check the prompt and settings now, not at the first validation minutes later."""
        if not self.prompt:
            raise ValueError("callbacks.sample.prompt is empty: give at least one character")
        unknown = pl_module.tokenizer.unknown_characters(self.prompt)
        if unknown:
            raise ValueError(
                f"callbacks.sample.prompt={self.prompt!r} has characters the corpus lacks: "
                f"{', '.join(map(repr, unknown))}; choose a prompt from the corpus's characters"
            )
        try:
            check_sampling_args(
                pl_module.tokenizer.vocab_size, self.temperature, self.top_k, self.top_p
            )
        except ValueError as error:
            raise ValueError(f"callbacks.sample.{error}") from None

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
        (text,) = generate_text(
            pl_module.model,
            pl_module.tokenizer,
            self.prompt,
            self.max_new_tokens,
            temperature=self.temperature,
            top_k=self.top_k,
            top_p=self.top_p,
            seed=self.seed,
        )
        pl_module.train(was_training)
        return text


class ValidateOnLastStep(L.Callback):
    """Validate when training reaches max_steps, even between val_check_interval points.

    Without it, a run whose max_steps is not a multiple of the interval ends unvalidated: its
    last steps count for neither the best checkpoint nor the reported loss.
    """

    def on_train_batch_end(self, trainer: L.Trainer, *args: object) -> None:
        if 0 < trainer.max_steps <= trainer.global_step:
            # A stop request makes Lightning validate before it leaves the loop.
            trainer.should_stop = True
