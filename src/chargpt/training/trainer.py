"""Building a run from its Hydra config: the checks, the module, the Trainer with its callbacks.

`chargpt.train` trains with what this builds, and `chargpt.bench` measures the same objects.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import asdict

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint, ProgressBar
from omegaconf import DictConfig, OmegaConf

from chargpt.data.datamodule import CharDataModule
from chargpt.errors import ChargptError
from chargpt.runs import renamed
from chargpt.runs.checkpoint import CheckpointError, load_checkpoint
from chargpt.runs.compose import CONF_DIR
from chargpt.training.budget import BUDGETS, budget_of
from chargpt.training.callbacks.samples import SampleCallback
from chargpt.training.module import GPTLightningModule, check_compile
from chargpt.training.precision import check_precision, precision_for
from chargpt.training.resume_state import check_training_state
from chargpt.training.threads import AUTO, thread_count


def check_settings(cfg: DictConfig) -> None:
    """Fail on a bad setting before any data is read or fetched, and before run.json or wandb."""
    check_top_level_keys(cfg)
    renamed.check_config(cfg)  # an old key in conf/local or an experiment file
    check_seed(cfg.seed)
    check_accelerator(cfg.trainer.get("accelerator"))
    check_precision(cfg.trainer.get("precision"))
    check_compile(cfg.compile)
    check_verbose(cfg.get("verbose", False))
    thread_count(cfg.trainer.get("num_threads", AUTO), cpus=1)  # its error, before any data
    instantiate(cfg.model, vocab_size=1)  # only the vocabulary waits for the data
    budgeted = budget_of(cfg.trainer) is not None
    check_trainer_steps(cfg.trainer, budgeted)
    instantiate(cfg.optimizer, _convert_="all")
    if not budgeted:  # with a budget, once max_steps is derived (the schedule's length)
        instantiate(cfg.scheduler)


def _top_level_keys() -> set[str]:
    """The keys conf/train.yaml gives the run config: its own, and its config groups'."""
    primary = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "train.yaml"))
    groups = set()
    for entry in primary.pop("defaults", []):
        name = entry if isinstance(entry, str) else next(iter(entry))
        groups.add(name.removeprefix("optional ").removeprefix("override ").split("@")[0])
    # experiment and hparams_search files are global packages: they set others' keys.
    return (set(primary) | groups) - {"_self_", "hydra", "experiment", "hparams_search", "local"}


def check_top_level_keys(cfg: DictConfig) -> None:
    """`+seeed=1` would otherwise be ignored: every top-level key must mean something."""
    known = _top_level_keys()
    for key in cfg:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = (
                f"did you mean {close[0]}?"
                if close
                else f"the settings are {', '.join(sorted(known))}"
            )
            raise ChargptError(f"{key}: not a setting of run.py ({hint}); remove +{key}=...")


MAX_SEED = 2**32 - 1  # what NumPy's and Python's seeding (seed_everything) accept


def check_verbose(verbose: object) -> None:
    if not isinstance(verbose, bool):
        raise ChargptError(f"verbose={verbose!r}: must be true or false")


def check_seed(seed: object) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise ChargptError(f"seed={seed!r}: must be a whole number from 0 to {MAX_SEED}")


def check_trainer_steps(trainer_cfg: DictConfig, budgeted: bool = False) -> None:
    """The step counts that Lightning would divide by, or loop on forever. Under a budget
    (`chargpt.training.budget`) max_steps is derived, not given."""
    # The training stream is endless: only max_steps ends a run.
    steps = () if budgeted else (("max_steps", "number of steps"),)
    for key, unit in (
        *steps,
        ("val_every_n_steps", "number of optimizer steps between validations"),
        ("accumulate_grad_batches", "whole number of batches per step (1: no accumulation)"),
        ("log_every_n_steps", "number of optimizer steps between logged metrics"),
    ):
        value = trainer_cfg.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ChargptError(f"trainer.{key}={value!r}: must be a positive {unit}")
    clip = trainer_cfg.get("gradient_clip_val")
    if clip is not None and (
        isinstance(clip, bool) or not isinstance(clip, int | float) or not 0 <= clip < math.inf
    ):
        raise ChargptError(
            f"trainer.gradient_clip_val={clip!r}: must be a number >= 0 (0 or null: no clipping)"
        )


def check_accelerator(accelerator: str | None) -> None:
    """A GPU run on a machine without one fails here in one line, not deep inside Lightning."""
    if accelerator not in ("gpu", "cuda") or torch.cuda.is_available():
        return
    if accelerator == "gpu" and torch.backends.mps.is_available():  # Lightning's gpu covers MPS
        return
    raise ChargptError(
        f"trainer.accelerator={accelerator}: PyTorch sees no GPU here (torch {torch.__version__}); "
        "train on the CPU (trainer=cpu) or install a CUDA build of PyTorch"
    )


def check_resumable(ckpt_path: str, module: GPTLightningModule) -> int:
    """Read the checkpoint safely now: a bad file or another model fails in one clear line.
    Returns the step it holds."""
    model, tokenizer = load_checkpoint(ckpt_path)
    saved, wanted = model.config.to_dict(), module.model_config.to_dict()
    changed = [f"model.{k}: {saved[k]} -> {wanted[k]}" for k in saved if saved[k] != wanted[k]]
    if changed:
        raise CheckpointError(
            f"{ckpt_path} holds another model ({', '.join(changed)}); "
            "resume with the model settings it was trained with"
        )
    if tokenizer.to_dict() != module.tokenizer.to_dict():
        raise CheckpointError(f"{ckpt_path} was trained on another vocabulary than data.*")
    return check_training_state(ckpt_path, module)  # what Lightning restores besides weights


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
        compile=cfg.compile,
    )


def build_trainer(
    cfg: DictConfig, module: GPTLightningModule, progress_bar: bool = True
) -> L.Trainer:
    """The Trainer of `cfg.trainer`, with the loggers and callbacks the config names;
    without a progress bar when `progress_bar` is false (a sweep's jobs)."""
    loggers = [instantiate(node) for node in cfg.logger.values()]
    callbacks = [instantiate(node) for node in cfg.callbacks.values()]
    settings = lightning_trainer_config(cfg.trainer)
    if not progress_bar:
        callbacks = [c for c in callbacks if not isinstance(c, ProgressBar)]
        settings["enable_progress_bar"] = False
    for callback in callbacks:
        if isinstance(callback, SampleCallback):
            callback.check(module)  # before run.json or wandb is touched
    return instantiate(settings, callbacks=callbacks, logger=loggers or False)


def lightning_trainer_config(trainer_cfg: DictConfig) -> dict:
    """`cfg.trainer` as Lightning's Trainer takes it, resolved.

    `val_every_n_steps` counts optimizer steps and is not a Lightning argument: it becomes
    Lightning's `val_check_interval`, which counts batches. `max_tokens` and `max_flops` are not
    either: `derive_max_steps` has set `max_steps` from them. Nor is `num_threads`, which the
    run gives torch (`chargpt.training.threads`), nor `precision: auto` (`precision_for`).
    """
    settings = OmegaConf.to_container(trainer_cfg, resolve=True)
    settings.pop("num_threads", None)
    settings["precision"] = precision_for(
        settings.get("precision"), settings.get("accelerator", "auto")
    )
    for budget in BUDGETS:  # already turned into max_steps (chargpt.training.budget)
        settings.pop(budget, None)
    steps = settings.pop("val_every_n_steps")
    settings["val_check_interval"] = steps * settings["accumulate_grad_batches"]
    return settings


def best_checkpoint(trainer: L.Trainer) -> ModelCheckpoint:
    callback = trainer.checkpoint_callback
    if not isinstance(callback, ModelCheckpoint):
        raise RuntimeError(
            "the callbacks config needs a ModelCheckpoint (callbacks.model_checkpoint)"
        )
    return callback
