"""The LightningModule's training step: compiled on request, logged without per-step syncs."""

from __future__ import annotations

import csv

import lightning as L
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.plugins.precision import MixedPrecision

from chargpt.data.datamodule import CharDataModule
from chargpt.errors import SettingError
from chargpt.runs.checkpoint import load_checkpoint
from chargpt.training.callbacks.throughput import TrainingThroughput
from chargpt.training.module import GPTLightningModule


def tiny_module(
    play_file,
    module_class: type[GPTLightningModule] = GPTLightningModule,
    optimizer: dict | None = None,
    compile: bool = False,
    **model,
) -> tuple[GPTLightningModule, CharDataModule]:
    datamodule = CharDataModule(corpus=None, path=str(play_file), block_size=16, batch_size=4)
    datamodule.setup("fit")
    module = module_class(
        model=dict(vocab_size=datamodule.vocab_size, block_size=16, n_layer=1, n_head=2, d_model=16)
        | model,
        optimizer=optimizer or {},
        scheduler=dict(warmup_steps=0, decay_steps=12),
        tokenizer=datamodule.tokenizer.to_dict(),
        compile=compile,
    )
    return module, datamodule


def quiet_trainer(**kwargs) -> L.Trainer:
    settings = dict(
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
    )
    return L.Trainer(**(settings | kwargs))


# Inductor's own imports use a deprecated TorchScript API.
@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated")
def test_compiled_training_saves_plain_weights(tmp_path, play_file):
    module, datamodule = tiny_module(play_file, compile=True)
    x, y = next(iter(datamodule.train_dataloader()))
    torch.testing.assert_close(module.training_loss(x, y), module.model(x, y)[1])
    trainer = quiet_trainer(max_steps=3)
    trainer.fit(module, datamodule=datamodule)
    path = tmp_path / "compiled.ckpt"
    trainer.save_checkpoint(path)
    keys = torch.load(path, weights_only=True)["state_dict"].keys()
    assert keys and all(key.startswith("model.") and "_orig_mod" not in key for key in keys)
    # A training setting: the checkpoint describes the model, not how it was trained.
    assert "compile" not in torch.load(path, weights_only=True)["hyper_parameters"]["model"]
    model, _ = load_checkpoint(path)
    module.eval()
    torch.testing.assert_close(model(x)[0], module.model(x)[0])


def test_compile_must_be_true_or_false(play_file):
    with pytest.raises(SettingError, match=r"^compile=1: must be true or false$"):
        tiny_module(play_file, compile=1)


def test_a_checkpoint_that_holds_compile_among_the_model_settings_loads(tmp_path, play_file):
    module, datamodule = tiny_module(play_file)
    trainer = quiet_trainer(max_steps=1)
    trainer.fit(module, datamodule=datamodule)
    path = tmp_path / "old.ckpt"
    trainer.save_checkpoint(path)
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["hyper_parameters"]["model"]["compile"] = True  # as saved before it moved
    torch.save(checkpoint, path)
    model, _ = load_checkpoint(path)
    assert model.config == module.model_config


class CountsLogs(GPTLightningModule):
    """Records the steps done (global_step) whenever a metric is logged, by name."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.logged_at: dict[str, list[int]] = {}

    def log(self, name, value, *args, **kwargs):
        self.logged_at.setdefault(name, []).append(self.global_step)
        if isinstance(value, torch.Tensor):
            assert value.device.type == "cpu"
        super().log(name, value, *args, **kwargs)


def test_per_step_metrics_are_logged_only_when_lightning_writes_logs(tmp_path, play_file):
    module, datamodule = tiny_module(play_file, CountsLogs)
    logger = CSVLogger(tmp_path, name="csv", version="")
    callbacks = [TrainingThroughput()]
    trainer = quiet_trainer(max_steps=12, log_every_n_steps=5, logger=logger, callbacks=callbacks)
    trainer.fit(module, datamodule=datamodule)
    # Every 5th optimizer step and the last: in the step (before the optimizer counts it) and
    # after it (the throughput callback).
    assert module.logged_at == {
        "train/loss": [4, 9, 11],
        "perf/tokens_per_s": [5, 10, 12],
        "perf/training_s": [5, 10, 12],
    }
    with open(tmp_path / "csv" / "metrics.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert [int(row["step"]) for row in rows if row["train/loss"]] == [4, 9]
    assert [int(row["step"]) for row in rows if row["perf/tokens_per_s"]] == [4, 9]
    assert trainer.progress_bar_metrics["train/loss"] == pytest.approx(
        float(trainer.callback_metrics["train/loss"])
    )


class GradientNormAtStep(L.Callback):
    """The global gradient norm each optimizer step used: after unscaling and clipping.

    Read after the step: under bf16 and fp32 the step itself runs the backward pass.
    """

    def __init__(self) -> None:
        self.norms: list[float] = []
        self.left_scaled = 0  # steps whose gradients the optimizer still had to unscale

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        def record(optimizer, args, kwargs) -> None:
            grads = [p.grad for group in optimizer.param_groups for p in group["params"]]
            norm = torch.linalg.vector_norm(torch.stack([g.norm() for g in grads if g is not None]))
            self.norms.append(float(norm))
            # A GradScaler tells a fused optimizer the scale to divide by, unless it unscaled.
            self.left_scaled += getattr(optimizer, "grad_scale", None) is not None

        trainer.optimizers[0].register_step_post_hook(record)


def precision_plugin(precision: str) -> MixedPrecision:
    """The GPU's mixed-precision plugins, on the CPU's autocast.

    `Trainer(precision="16-mixed")` on the CPU quietly falls back to bf16; built by hand, the
    16-bit plugin keeps its GradScaler, the path where fused AdamW unscales for itself.
    """
    scaler = torch.amp.GradScaler("cpu") if precision == "16-mixed" else None
    return MixedPrecision(precision, "cpu", scaler=scaler)


@pytest.mark.parametrize("precision", ["bf16-mixed", "16-mixed"])
@pytest.mark.parametrize("implementation", ["auto", "for-loop", "foreach", "fused"])
def test_mixed_precision_clips_with_every_implementation(play_file, precision, implementation):
    module, datamodule = tiny_module(play_file, optimizer={"implementation": implementation})
    before = [p.detach().clone() for p in module.parameters()]
    spy = GradientNormAtStep()
    clip = 0.05  # far below this model's gradient norms: every step is clipped
    trainer = quiet_trainer(
        accelerator="cpu",
        plugins=[precision_plugin(precision)],
        gradient_clip_val=clip,
        max_steps=4,
        callbacks=[spy],
    )
    trainer.fit(module, datamodule=datamodule)
    assert trainer.precision == precision
    assert (trainer.precision_plugin.scaler is not None) == (precision == "16-mixed")
    assert trainer.global_step == 4
    finite = [norm for norm in spy.norms if torch.isfinite(torch.tensor(norm))]
    assert finite and all(norm <= clip * 1.001 for norm in finite), spy.norms
    assert spy.left_scaled == 0  # the true gradients were clipped, not the scaled ones
    changed = any(not torch.equal(a, b) for a, b in zip(before, module.parameters(), strict=True))
    assert changed and all(torch.isfinite(p).all() for p in module.parameters())


def test_auto_implementation_is_fused_on_the_cpu(play_file):
    module, datamodule = tiny_module(play_file)
    trainer = quiet_trainer(accelerator="cpu", max_steps=1)
    trainer.fit(module, datamodule=datamodule)
    assert trainer.optimizers[0].defaults["fused"] is True
