"""What a benchmark trains: a config composed like `run.py`'s, and the objects training builds.

The data module, the LightningModule (which builds the GPT and, with `compile=true`, its
compiled training step) and the optimizer come from the same code `run.py` uses, so the figures
describe the real thing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, open_dict

from chargpt.data.datamodule import CharDataModule
from chargpt.errors import SettingError
from chargpt.runs import renamed
from chargpt.runs.compose import compose_config
from chargpt.training.module import GPTLightningModule
from chargpt.training.precision import resolve_precision
from chargpt.training.trainer import build_module, check_settings


def training_device(trainer_cfg: DictConfig) -> torch.device:
    """The device Lightning picks for `trainer.accelerator` (cpu, gpu/cuda or auto)."""
    accelerator = trainer_cfg.accelerator
    if accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available()):
        return torch.device("cuda", 0)
    if accelerator not in ("cpu", "auto"):
        raise SettingError(
            f"trainer.accelerator={accelerator!r}: the benchmark knows cpu, gpu, auto"
        )
    return torch.device("cpu")


@dataclass
class Workload:
    """One configuration: its overrides, composed config, prepared data and target device."""

    overrides: list[str]
    cfg: DictConfig
    datamodule: CharDataModule
    device: torch.device

    @classmethod
    def from_overrides(cls, overrides: list[str], output_dir: str | Path) -> Workload:
        renamed.check_overrides(overrides)  # one line naming the new key, not Hydra's error
        cfg = compose_config(overrides, output_dir)
        check_settings(cfg)  # as run.py checks them, before any data is read
        resolve_precision(cfg.trainer)
        datamodule: CharDataModule = instantiate(cfg.data)
        datamodule.prepare_data()
        datamodule.setup("fit")
        with open_dict(cfg):
            cfg.model.vocab_size = datamodule.vocab_size  # as run.py: data -> model
        return cls(overrides, cfg, datamodule, training_device(cfg.trainer))

    @property
    def label(self) -> str:
        return " ".join(self.overrides) or "(defaults)"

    @property
    def tokens_per_step(self) -> int:
        """Training tokens per optimizer step: batch × context × accumulated batches."""
        return (
            self.datamodule.batch_size
            * self.datamodule.block_size
            * self.cfg.trainer.accumulate_grad_batches
        )

    def build_module(self) -> GPTLightningModule:
        """A fresh LightningModule (and GPT), built exactly as `run.py` builds it."""
        torch.manual_seed(self.cfg.seed)
        return build_module(self.cfg, self.datamodule)
