"""Check a checkpoint's training state before Lightning restores it (`run.py ckpt_path=`).

`chargpt.runs.checkpoint.load_checkpoint` checks the model a checkpoint holds. Resuming also
restores the optimizer, the schedule, the random-number state and the callbacks' states, which
Lightning loads as they are: a crafted optimizer state of the wrong shape crashes the fused AdamW
kernel (a segmentation fault), other parts end in tracebacks. Each part is checked here against the
module being resumed, from the memory-mapped file, and every problem is one `CheckpointError`.
"""

from __future__ import annotations

import numbers
import os

import torch
from torch import Tensor

from chargpt.runs.checkpoint import CheckpointError
from chargpt.training.callbacks.throughput import TrainingThroughput
from chargpt.training.callbacks.throughput import state_problem as throughput_state_problem
from chargpt.training.module import GPTLightningModule
from chargpt.training.optim import build_optimizer, group_state_keys

RESUME_HINT = "resume from a checkpoint that run.py wrote for this run, or start a new run"


class Fresh:
    """What this module would start from, built once: the reference each saved part must fit."""

    def __init__(self, module: GPTLightningModule) -> None:
        self.weights = module.state_dict()
        # As configure_optimizers builds them (the schedule adds initial_lr to the groups).
        self.optimizer = build_optimizer(module.model, module.optimizer_config)
        schedule = torch.optim.lr_scheduler.LambdaLR(self.optimizer, module.schedule.lr_factor)
        self.schedule = schedule.state_dict()


def check_training_state(path: str | os.PathLike, module: GPTLightningModule) -> int:
    """Raise CheckpointError unless every part Lightning restores fits `module`; return the
    step the checkpoint holds."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"{path}: not a training checkpoint; {RESUME_HINT}")
    fresh = Fresh(module)
    for check in (_weights, _optimizer, _schedulers, _random_state, _callbacks, _progress):
        problem = check(checkpoint, fresh)
        if problem is not None:
            raise CheckpointError(
                f"{path}: its training state does not fit ({problem}); {RESUME_HINT}"
            )
    return checkpoint["global_step"]  # checked by _progress


def _weights(checkpoint: dict, fresh: Fresh) -> str | None:
    saved = checkpoint.get("state_dict")
    if not isinstance(saved, dict):
        return "no state_dict"
    expected = fresh.weights
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


def _optimizer(checkpoint: dict, fresh: Fresh) -> str | None:
    states = checkpoint.get("optimizer_states")
    if not isinstance(states, list) or len(states) != 1 or not isinstance(states[0], dict):
        return "optimizer_states is not one optimizer's state"
    state, groups = states[0].get("state"), states[0].get("param_groups")
    wanted_groups = fresh.optimizer.state_dict()["param_groups"]
    if (
        not isinstance(groups, list)
        or len(groups) != len(wanted_groups)
        or not isinstance(state, dict)
    ):
        return (
            f"the optimizer state is not this {_algorithm(fresh)}'s with {len(wanted_groups)} "
            "parameter groups"
        )
    for group, wanted in zip(groups, wanted_groups, strict=True):
        problem = _group_problem(group, wanted)
        if problem is not None:
            return f"a parameter group {problem}"
    parameters = [(p, g) for g in fresh.optimizer.param_groups for p in g["params"]]
    for index, values in state.items():
        if not isinstance(index, int) or not 0 <= index < len(parameters):
            return f"the optimizer state names parameter {index!r}, which this model lacks"
        parameter, group = parameters[index]
        problem = _parameter_state(values, parameter, group_state_keys(group))
        if problem is not None:
            return f"the optimizer state of parameter {index} {problem}"
    return None


def _algorithm(fresh: Fresh) -> str:
    return type(fresh.optimizer).__name__


# Settings that change what state the step reads (amsgrad needs max_exp_avg_sq); fused and
# foreach may differ: they change the kernel, not the state.
MUST_MATCH = (
    "amsgrad",
    "maximize",
    "capturable",
    "differentiable",
    "decoupled_weight_decay",
    # Muon's: how many Newton-Schulz steps, with which coefficients, how the rate is adjusted.
    "ns_steps",
    "ns_coefficients",
    "adjust_lr_fn",
    "nesterov",
)


def _group_problem(group: object, wanted: dict) -> str | None:
    """A saved parameter group against a fresh optimizer's: its keys (an older PyTorch may
    have saved fewer: they get defaults), and values of the same kinds."""
    if not isinstance(group, dict) or "params" not in group or not set(group) <= set(wanted):
        return "has other settings than this optimizer's (was it another optimizer=?)"
    if group["params"] != wanted["params"]:
        return "holds other parameters than this model's"
    for key, value in wanted.items():
        if key in MUST_MATCH and group.get(key, value) != value:
            return f"has {key}={group[key]!r}, but this optimizer has {value!r}"
        if key in group and not _alike(group[key], value):
            return f"has {key}={group[key]!r}, not a value like {value!r}"
    return None


def _alike(saved: object, fresh: object) -> bool:
    if isinstance(fresh, bool) or fresh is None:
        return saved is fresh or (isinstance(saved, bool) and fresh is not None)
    if isinstance(fresh, numbers.Integral):
        return isinstance(saved, numbers.Integral) and not isinstance(saved, bool)
    if isinstance(fresh, numbers.Real):
        return isinstance(saved, numbers.Real) and not isinstance(saved, bool)
    if isinstance(fresh, tuple | list):
        return (
            isinstance(saved, tuple | list)
            and len(saved) == len(fresh)
            and all(_alike(a, b) for a, b in zip(saved, fresh, strict=True))
        )
    return type(saved) is type(fresh)


def _parameter_state(values: object, parameter: Tensor, keys: frozenset[str]) -> str | None:
    if not isinstance(values, dict) or set(values) != keys:
        return f"does not hold exactly {', '.join(sorted(keys))}"
    if "step" in keys:
        step = values["step"]
        if not (isinstance(step, Tensor) and step.numel() == 1 and step.dim() <= 1):
            return "has a step that is not one number"
    for name in sorted(keys - {"step"}):
        value = values[name]
        if not _dense_like(value, parameter):
            shape = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
            return f"has {name} of shape {shape}, not a dense {tuple(parameter.shape)} tensor"
    return None


def _dense_like(value: object, parameter: Tensor) -> bool:
    """A tensor the fused kernel may write into: the parameter's shape, contiguous, all stored."""
    return (
        isinstance(value, Tensor)
        and value.layout == torch.strided
        and value.is_floating_point()
        and value.shape == parameter.shape
        and value.is_contiguous()
        and value.untyped_storage().nbytes() - value.storage_offset() * value.element_size()
        >= value.numel() * value.element_size()
    )


def _schedulers(checkpoint: dict, fresh: Fresh) -> str | None:
    schedulers = checkpoint.get("lr_schedulers")
    if not isinstance(schedulers, list) or len(schedulers) != 1:
        return "lr_schedulers is not one schedule's state"
    saved = schedulers[0]
    required = {"lr_lambdas", "base_lrs", "last_epoch"}
    if not isinstance(saved, dict) or not required <= set(saved) <= set(fresh.schedule):
        return "lr_schedulers holds another schedule's state"
    for key, value in fresh.schedule.items():
        if key in saved and not _alike(saved[key], value):
            return f"the schedule has {key}={saved[key]!r}, not a value like {value!r}"
    return None


def _random_state(checkpoint: dict, fresh: Fresh) -> str | None:
    states = checkpoint.get("rng_states")
    if states is None:
        return None  # written before rng_states existed: dropout's stream starts anew
    if not isinstance(states, dict):
        return "rng_states is not a mapping"
    cpu = states.get("cpu")
    if not _is_generator_state(cpu, torch.get_rng_state()):
        return "rng_states['cpu'] is not a CPU generator's state"
    try:
        torch.Generator().set_state(cpu)
    except RuntimeError:
        return "rng_states['cpu'] is not a valid CPU generator state"
    cuda = states.get("cuda", [])
    if not isinstance(cuda, list) or not all(
        isinstance(s, Tensor) and s.dtype == torch.uint8 for s in cuda
    ):
        return "rng_states['cuda'] is not a list of GPU generator states"
    return None


def _is_generator_state(value: object, like: Tensor) -> bool:
    return isinstance(value, Tensor) and value.dtype == like.dtype and value.shape == like.shape


def _callbacks(checkpoint: dict, fresh: Fresh) -> str | None:
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
        if name == TrainingThroughput.__qualname__:
            problem = throughput_state_problem(state)
            if problem is not None:
                return f"callback {name!r}: its state {problem}"
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


def _progress(checkpoint: dict, fresh: Fresh) -> str | None:
    step = checkpoint.get("global_step")
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        return "global_step is not a step count"
    if not isinstance(checkpoint.get("loops", {}), dict):
        return "loops is not a mapping"
    return None
