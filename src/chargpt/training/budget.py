"""A run's length in compute: `trainer.max_tokens` or `trainer.max_flops` instead of max_steps.

Variants compared at the same number of steps are not compared at the same cost when their batch,
context or model size differ. A budget in training characters (tokens) or training FLOPs is:
the run derives its optimizer steps from it,

    max_steps = floor(budget / cost of one step)
    tokens per step = data.batch_size × model.block_size × trainer.accumulate_grad_batches
                      × processes (num_nodes × devices)
    FLOPs per step = tokens per step × training FLOPs per token (chargpt.model.parameters)

and everything that follows `trainer.max_steps` (the cosine schedule's `decay_steps`, the last
validation) follows the derived length. The derivation reads only the config, so a resumed run,
replaying its folder's settings, derives the same length.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, open_dict

from chargpt.errors import ChargptError
from chargpt.model import GPT
from chargpt.model.parameters import training_flops_per_token
from chargpt.runs.read import override_key

BUDGETS = {"max_tokens": "training tokens (characters)", "max_flops": "training FLOPs"}


@dataclass(frozen=True)
class StepCost:
    """What one optimizer step costs: its training tokens, and the FLOPs of each token."""

    tokens_per_step: int
    flops_per_token: int
    processes: int

    @property
    def flops_per_step(self) -> int:
        return self.tokens_per_step * self.flops_per_token


def step_cost(cfg: DictConfig) -> StepCost:
    """The cost of one step of the run `cfg` describes (model.vocab_size must be known)."""
    processes = configured_processes(cfg.trainer)
    tokens = (
        cfg.data.batch_size * cfg.model.block_size * cfg.trainer.accumulate_grad_batches * processes
    )
    with torch.device("meta"):  # the shapes alone: no memory, no initialisation
        model = GPT(instantiate(cfg.model))
    return StepCost(tokens, training_flops_per_token(model), processes)


def budget_of(trainer_cfg: DictConfig) -> tuple[str, float] | None:
    """The budget key and value the run sets, checked; None when it counts steps."""
    given = {key: trainer_cfg.get(key) for key in BUDGETS if trainer_cfg.get(key) is not None}
    if len(given) > 1:
        raise ChargptError(
            "trainer.max_tokens and trainer.max_flops are both set; a run has one budget: "
            "set one of them to null"
        )
    if not given:
        return None
    key, value = next(iter(given.items()))
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
        raise ChargptError(
            f"trainer.{key}={value!r}: must be a positive number of {BUDGETS[key]} "
            "(e.g. 2e6), or null to count trainer.max_steps"
        )
    return key, value


def derive_max_steps(cfg: DictConfig, overrides: Sequence[str] = ()) -> StepCost | None:
    """Set `cfg.trainer.max_steps` from the run's budget, if it has one; returns the step cost.

    `overrides` are the run's command line: a `trainer.max_steps=` there would be overruled by
    the budget without a word, so it is an error instead.
    """
    budget = budget_of(cfg.trainer)
    if budget is None:
        return None
    key, value = budget
    given_steps = [o for o in overrides if override_key(o) == "trainer.max_steps"]
    if given_steps:
        raise ChargptError(
            f"{given_steps[-1]} and trainer.{key}={value:g} both set the run's length; count "
            f"steps with trainer.{key}=null, or change trainer.{key} instead"
        )
    cost = step_cost(cfg)
    per_step = cost.tokens_per_step if key == "max_tokens" else cost.flops_per_step
    steps = int(value // per_step)
    if steps < 1:
        flops = f", {cost.flops_per_step:,} FLOPs" if key == "max_flops" else ""
        raise ChargptError(
            f"trainer.{key}={value:g} is below one optimizer step, which takes "
            f"{describe(cost)}{flops}; raise it, or make the batch smaller"
        )
    with open_dict(cfg):
        cfg.trainer.max_steps = steps
    return cost


def describe(cost: StepCost) -> str:
    """`2,048 tokens (batch × context × accumulation × 1 process) of 4,932,864 FLOPs each`."""
    processes = f"{cost.processes} process{'es' if cost.processes > 1 else ''}"
    return (
        f"{cost.tokens_per_step:,} tokens (batch × context × accumulation × {processes}) "
        f"of {cost.flops_per_token:,} FLOPs each"
    )


def configured_processes(trainer_cfg: DictConfig) -> int:
    """num_nodes × devices, as the config names them (`check_processes` confirms it later)."""
    devices = trainer_cfg.get("devices", "auto")
    nodes = trainer_cfg.get("num_nodes", 1) or 1
    if isinstance(devices, str) and devices.strip().lstrip("-").isdigit():
        devices = int(devices)
    if isinstance(devices, str) and "," in devices:  # "0,1": those device ids
        devices = [part for part in devices.split(",") if part.strip()]
    if isinstance(devices, int) and devices > 0:
        return devices * nodes
    if not isinstance(devices, int | str):  # a list of device ids
        return max(len(list(devices)), 1) * nodes
    on_cpu = trainer_cfg.get("accelerator") == "cpu" or not torch.cuda.is_available()
    return (1 if on_cpu else torch.cuda.device_count()) * nodes


def check_processes(trainer: L.Trainer, cost: StepCost | None) -> None:
    """The budget assumed `cost.processes`; a Lightning that launches another number would
    spend another budget."""
    if cost is not None and trainer.world_size != cost.processes:
        raise ChargptError(
            f"the budget assumed {cost.processes} processes from trainer.devices and "
            f"trainer.num_nodes, but Lightning runs {trainer.world_size}; set trainer.devices "
            "to a number"
        )
