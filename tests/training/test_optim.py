import itertools

import pytest
import torch

from chargpt.model import GPT, GPTConfig
from chargpt.training.optim import (
    OptimizerConfig,
    ScheduleConfig,
    build_optimizer,
    parameter_groups,
)


@pytest.mark.parametrize("tied", [True, False])
def test_weight_decay_only_on_linear_matrices(tied):
    model = GPT(
        GPTConfig(
            vocab_size=11,
            block_size=8,
            n_layer=2,
            n_head=2,
            d_model=16,
            tie_weights=tied,
            pos_encoding="learned",
        )
    )
    decay, no_decay = parameter_groups(model, 0.1)
    decayed = {id(p) for p in decay["params"]}
    names = {id(p): n for n, p in model.named_parameters()}
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    for pid, name in names.items():
        is_linear_matrix = name.endswith("weight") and (
            ".attn." in name or ".mlp." in name or name == "head.weight"
        )
        assert (pid in decayed) == is_linear_matrix, name
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


def test_schedule_warms_up_then_decays_to_the_floor():
    schedule = ScheduleConfig(warmup_steps=10, decay_steps=110, min_lr_ratio=0.1)
    factors = [schedule.lr_factor(step) for step in range(200)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert factors[10] == pytest.approx(1.0)
    assert factors[60] == pytest.approx(0.55)  # half-way through the cosine
    assert factors[110] == pytest.approx(0.1) and factors[199] == pytest.approx(0.1)
    assert all(a >= b for a, b in itertools.pairwise(factors[10:]))


def test_warmup_is_a_share_of_short_runs():
    schedule = ScheduleConfig(decay_steps=50, warmup_ratio=0.1)
    assert schedule.warmup_length == 5
    assert schedule.lr_factor(4) == pytest.approx(1.0)  # the peak is reached within the run
    assert ScheduleConfig(decay_steps=50, warmup_steps=20).warmup_length == 20


def test_no_warmup_starts_at_peak():
    assert ScheduleConfig(warmup_steps=0, decay_steps=100).lr_factor(0) == 1.0


def test_optimizer_settings():
    model = torch.nn.Linear(4, 4)
    optimizer = build_optimizer(model, OptimizerConfig(lr=3e-3, betas=[0.8, 0.9]))
    assert optimizer.defaults["lr"] == 3e-3 and optimizer.defaults["betas"] == (0.8, 0.9)


@pytest.mark.parametrize(
    ("implementation", "foreach", "fused"),
    [
        ("auto", False, True),  # on the CPU: the fused kernel
        ("for-loop", False, False),
        ("foreach", True, False),
        ("fused", False, True),
    ],
)
def test_adamw_implementation_is_chosen_by_name(implementation, foreach, fused):
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 4)
    reference = torch.nn.Linear(4, 4)
    reference.load_state_dict(model.state_dict())
    optimizer = build_optimizer(model, OptimizerConfig(implementation=implementation))
    assert (optimizer.defaults["foreach"], optimizer.defaults["fused"]) == (foreach, fused)
    baseline = build_optimizer(reference, OptimizerConfig(implementation="for-loop"))
    x = torch.randn(8, 4)
    for net, opt in ((model, optimizer), (reference, baseline)):
        net(x).square().mean().backward()
        opt.step()
    torch.testing.assert_close(model.weight, reference.weight)  # the same update, faster


@pytest.mark.parametrize(
    ("config", "kwargs", "message"),
    [
        (OptimizerConfig, {"lr": 0}, "optimizer.lr=0: must be > 0"),
        (
            OptimizerConfig,
            {"implementation": "apex"},
            "optimizer.implementation='apex': must be one of auto, for-loop, foreach, fused",
        ),
        (OptimizerConfig, {"betas": [0.9, 1.0]}, "optimizer.betas"),
        (OptimizerConfig, {"betas": "ab"}, "optimizer.betas='ab': must be two numbers"),
        (OptimizerConfig, {"lr": "abc"}, "optimizer.lr='abc': must be a finite number"),
        (OptimizerConfig, {"lr": float("inf")}, "optimizer.lr=inf: must be a finite number"),
        (OptimizerConfig, {"weight_decay": float("nan")}, "optimizer.weight_decay=nan"),
        (OptimizerConfig, {"eps": -1}, "optimizer.eps=-1: must be > 0"),
        (OptimizerConfig, {"eps": 0}, "optimizer.eps=0: must be > 0"),
        (ScheduleConfig, {"warmup_ratio": "abc"}, "scheduler.warmup_ratio='abc'"),
        (ScheduleConfig, {"decay_steps": 1.5}, "scheduler.decay_steps=1.5: must be a whole"),
        (ScheduleConfig, {"warmup_steps": -1}, "scheduler.warmup_steps=-1"),
        (ScheduleConfig, {"decay_steps": 50, "warmup_steps": 100}, "below decay_steps=50"),
        (ScheduleConfig, {"warmup_ratio": 1.0}, "scheduler.warmup_ratio=1.0"),
        (ScheduleConfig, {"min_lr_ratio": 2}, "scheduler.min_lr_ratio=2"),
    ],
)
def test_invalid_settings(config, kwargs, message):
    if config is ScheduleConfig:  # decay_steps has no default: run.py sets it from max_steps
        kwargs = {"decay_steps": 100} | kwargs
    with pytest.raises(ValueError, match=message):
        config(**kwargs)
