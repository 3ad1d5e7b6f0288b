"""Wiring: build the data, model, callbacks, loggers and Trainer from a Hydra config; train.

`run.py` is the command-line entry point; this module holds the work so tests can call it directly.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.loggers import Logger, WandbLogger
from omegaconf import DictConfig, OmegaConf, open_dict

from chargpt.data.datamodule import CharDataModule
from chargpt.training.module import GPTLightningModule


def train(cfg: DictConfig) -> float | None:
    """Train, test the best checkpoint, and return the best validation loss (for sweepers)."""
    check_settings(cfg)
    L.seed_everything(cfg.seed, workers=True)
    datamodule: CharDataModule = instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    with open_dict(cfg):
        cfg.model.vocab_size = datamodule.vocab_size  # facts flow one way: data -> model
    module = build_module(cfg, datamodule)
    _fill_run_identity(cfg)
    loggers = [instantiate(node) for node in cfg.logger.values()]
    callbacks = [instantiate(node) for node in cfg.callbacks.values()]
    if not loggers:  # logger=none: the learning-rate monitor has nowhere to write and would fail
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    trainer: L.Trainer = instantiate(
        cfg.trainer,
        callbacks=callbacks,
        logger=loggers or False,
        val_check_interval=_val_check_batches(cfg.trainer),
    )
    try:
        run_config = OmegaConf.to_container(cfg, resolve=True)
        run_config["num_params"] = module.model.num_parameters()
        for logger in loggers:
            logger.log_hyperparams(run_config)
        trainer.fit(module, datamodule=datamodule)
        best = _best_checkpoint(trainer)
        if cfg.test_after_training:
            trainer.test(module, datamodule=datamodule, ckpt_path=best.best_model_path or None)
    except BaseException:
        _close_loggers(loggers, exit_code=1)
        raise
    _close_loggers(loggers, exit_code=0)
    _report(cfg, best, loggers)
    return None if best.best_model_score is None else float(best.best_model_score)


def check_settings(cfg: DictConfig) -> None:
    """Fail on a bad model, optimizer or schedule setting before any data is read or fetched."""
    instantiate(cfg.model, vocab_size=1)  # only the vocabulary waits for the data
    instantiate(cfg.optimizer, _convert_="all")
    instantiate(cfg.scheduler)


def build_module(cfg: DictConfig, datamodule: CharDataModule) -> GPTLightningModule:
    """Instantiate the (validated) config dataclasses and hand their plain data to the module."""
    model_config = instantiate(cfg.model)
    optimizer_config = instantiate(cfg.optimizer, _convert_="all")
    schedule_config = instantiate(cfg.scheduler)
    return GPTLightningModule(
        model=model_config.to_dict(),
        optimizer=asdict(optimizer_config),
        scheduler=asdict(schedule_config),
        tokenizer=datamodule.tokenizer.to_dict(),
    )


def _fill_run_identity(cfg: DictConfig) -> None:
    """Default the wandb name to the job's overrides and, in a sweep, the group to the sweep."""
    wandb_cfg = cfg.logger.get("wandb")
    if wandb_cfg is None or not HydraConfig.initialized():
        return
    hydra_cfg = HydraConfig.get()
    if wandb_cfg.name is None and hydra_cfg.job.override_dirname:
        wandb_cfg.name = hydra_cfg.job.override_dirname
    if wandb_cfg.group is None and hydra_cfg.mode == RunMode.MULTIRUN:
        wandb_cfg.group = Path(hydra_cfg.sweep.dir).as_posix()


def _val_check_batches(trainer_cfg: DictConfig) -> int | float:
    """trainer.val_check_interval counts optimizer steps; Lightning counts batches."""
    interval = trainer_cfg.val_check_interval
    if isinstance(interval, int):
        return interval * trainer_cfg.accumulate_grad_batches
    return interval


def _best_checkpoint(trainer: L.Trainer) -> ModelCheckpoint:
    callback = trainer.checkpoint_callback
    if not isinstance(callback, ModelCheckpoint):
        raise RuntimeError(
            "the callbacks config needs a ModelCheckpoint (callbacks.model_checkpoint)"
        )
    return callback


def _close_loggers(loggers: list[Logger], exit_code: int) -> None:
    """Finish the wandb run (failed if training raised), so the next sweep job starts clean."""
    for logger in loggers:
        if isinstance(logger, WandbLogger) and logger._experiment is not None:
            logger.experiment.finish(exit_code=exit_code)


def _report(cfg: DictConfig, best: ModelCheckpoint, loggers: list[Logger]) -> None:
    lines = [f"outputs:      {cfg.paths.output_dir}"]
    if best.best_model_path:
        lines.append(f"best ckpt:    {best.best_model_path} (val/loss {best.best_model_score:.4f})")
    if best.last_model_path:
        lines.append(f"last ckpt:    {best.last_model_path}")
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            lines.append(
                f"wandb run:    {_wandb_dir(logger)}  (browse: wandb leet; upload: wandb sync)"
            )
        elif logger.log_dir:
            label = type(logger).__name__.removesuffix("Logger").lower() + ":"
            lines.append(f"{label:<13} {logger.log_dir}")
    print("\n".join(lines))


def _wandb_dir(logger: WandbLogger) -> Any:
    run = logger._experiment
    return Path(run.dir).parent if run is not None else logger.save_dir
