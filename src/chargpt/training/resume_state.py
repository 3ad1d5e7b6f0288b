"""Check a checkpoint's training state before Lightning restores it (`run.py ckpt_path=`).

`chargpt.checkpoint.load_checkpoint` checks the model a checkpoint holds. Resuming also restores
the optimizer, the schedule, the random-number state and the callbacks' states, which Lightning
loads as they are: a crafted optimizer state of the wrong shape crashes the fused AdamW kernel
(a segmentation fault), other parts end in tracebacks. Each part is checked here against the
module being resumed, from the memory-mapped file, and every problem is one `CheckpointError`.
"""

from __future__ import annotations

import numbers
import os

import torch
from torch import Tensor

from chargpt.checkpoint import CheckpointError
from chargpt.training.module import GPTLightningModule
from chargpt.training.optim import parameter_groups

RESUME_HINT = "resume from a checkpoint that run.py wrote for this run, or start a new run"


def check_training_state(path: str | os.PathLike, module: GPTLightningModule) -> None:
    """Raise CheckpointError unless every part Lightning restores fits `module`."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"{path}: not a training checkpoint; {RESUME_HINT}")
    for check in (_weights, _optimizer, _schedulers, _random_state, _callbacks, _progress):
        problem = check(checkpoint, module)
        if problem is not None:
            raise CheckpointError(
                f"{path}: its training state does not fit ({problem}); {RESUME_HINT}"
            )


def _weights(checkpoint: dict, module: GPTLightningModule) -> str | None:
    saved = checkpoint.get("state_dict")
    if not isinstance(saved, dict):
        return "no state_dict"
    expected = module.state_dict()
    for key in sorted(set(saved) ^ set(expected), key=str):
        return f"state_dict {'lacks' if key in expected else 'has an unknown entry'} {key!r}"
    for key, tensor in expected.items():
        value = saved[key]
        if (
            not isinstance(value, Tensor)
            or value.shape != tensor.shape
            or value.dtype != tensor.dtype
        ):
            return f"state_dict[{key!r}] is not a {tuple(tensor.shape)} {tensor.dtype} tensor"
    return None


def _optimizer(checkpoint: dict, module: GPTLightningModule) -> str | None:
    states = checkpoint.get("optimizer_states")
    if not isinstance(states, list) or len(states) != 1 or not isinstance(states[0], dict):
        return "optimizer_states is not one optimizer's state"
    state, groups = states[0].get("state"), states[0].get("param_groups")
    expected = parameter_groups(module.model, module.optimizer_config.weight_decay)
    if not isinstance(groups, list) or len(groups) != len(expected) or not isinstance(state, dict):
        return f"the optimizer state is not AdamW's with {len(expected)} parameter groups"
    for group, wanted in zip(groups, expected, strict=True):
        params = group.get("params") if isinstance(group, dict) else None
        if not isinstance(params, list) or len(params) != len(wanted["params"]):
            return "the optimizer's parameter groups are not this model's"
    parameters = [p for group in expected for p in group["params"]]
    indices = [i for group in groups for i in group["params"]]
    if indices != list(range(len(parameters))):
        return "the optimizer's parameter groups are not this model's"
    for index, values in state.items():
        if not isinstance(index, int) or not 0 <= index < len(parameters):
            return f"the optimizer state names parameter {index!r}, which this model lacks"
        problem = _parameter_state(values, parameters[index])
        if problem is not None:
            return f"the optimizer state of parameter {index} {problem}"
    return None


def _parameter_state(values: object, parameter: Tensor) -> str | None:
    if not isinstance(values, dict):
        return "is not a mapping"
    for name, value in values.items():
        if isinstance(value, Tensor):
            if value.numel() == 1 and value.dim() <= 1 and name == "step":
                continue
            if value.shape != parameter.shape or not value.is_floating_point():
                return f"has {name} of shape {tuple(value.shape)}, not {tuple(parameter.shape)}"
        elif not isinstance(value, numbers.Real):
            return f"has a {type(value).__name__} {name}"
    return None


def _schedulers(checkpoint: dict, module: GPTLightningModule) -> str | None:
    schedulers = checkpoint.get("lr_schedulers")
    if (
        not isinstance(schedulers, list)
        or len(schedulers) != 1
        or not isinstance(schedulers[0], dict)
    ):
        return "lr_schedulers is not one schedule's state"
    return None


def _random_state(checkpoint: dict, module: GPTLightningModule) -> str | None:
    states = checkpoint.get("rng_states")
    if states is None:
        return None  # written before rng_states existed: dropout's stream starts anew
    if not isinstance(states, dict):
        return "rng_states is not a mapping"
    cpu = states.get("cpu")
    if not _is_generator_state(cpu, torch.get_rng_state()):
        return "rng_states['cpu'] is not a CPU generator's state"
    cuda = states.get("cuda", [])
    if not isinstance(cuda, list) or not all(
        isinstance(s, Tensor) and s.dtype == torch.uint8 for s in cuda
    ):
        return "rng_states['cuda'] is not a list of GPU generator states"
    return None


def _is_generator_state(value: object, like: Tensor) -> bool:
    return isinstance(value, Tensor) and value.dtype == like.dtype and value.shape == like.shape


def _callbacks(checkpoint: dict, module: GPTLightningModule) -> str | None:
    states = checkpoint.get("callbacks", {})
    if not isinstance(states, dict):
        return "callbacks is not a mapping"
    for name, state in states.items():
        if not isinstance(state, dict):
            return f"the state of callback {name!r} is not a mapping"
        if "best_model_path" in state or "best_k_models" in state:  # ModelCheckpoint's
            problem = _checkpoint_callback_state(state)
            if problem is not None:
                return f"callback {name!r}: {problem}"
    return None


def _checkpoint_callback_state(state: dict) -> str | None:
    for key in ("best_model_path", "kth_best_model_path", "last_model_path"):
        if not isinstance(state.get(key, ""), str):
            return f"{key} is not a path"
    for key in ("best_model_score", "current_score", "kth_value"):
        if not _is_score(state.get(key)):
            return f"{key} is not a number"
    if "best_model_score" not in state:
        return "best_model_score is missing"
    best_k = state.get("best_k_models", {})
    if not isinstance(best_k, dict) or not all(
        isinstance(k, str) and _is_score(v) for k, v in best_k.items()
    ):
        return "best_k_models is not a mapping of paths to scores"
    return None


def _is_score(value: object) -> bool:
    if value is None or (isinstance(value, numbers.Real) and not isinstance(value, bool)):
        return True
    return isinstance(value, Tensor) and value.numel() == 1


def _progress(checkpoint: dict, module: GPTLightningModule) -> str | None:
    step = checkpoint.get("global_step")
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        return "global_step is not a step count"
    if not isinstance(checkpoint.get("loops", {}), dict):
        return "loops is not a mapping"
    return None
