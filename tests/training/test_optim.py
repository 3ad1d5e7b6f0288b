import itertools

import pytest
import torch

from chargpt.model import GPT, GPTConfig
from chargpt.training.optim import (
    MuonWithAdamW,
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
        (
            OptimizerConfig,
            {"algorithm": "sgd"},
            "optimizer.algorithm='sgd': must be one of adamw, muon",
        ),
        (OptimizerConfig, {"muon_lr": 0}, "optimizer.muon_lr=0: must be > 0"),
        (OptimizerConfig, {"muon_lr": "x"}, "optimizer.muon_lr='x': must be a finite number"),
        (OptimizerConfig, {"muon_momentum": 1.0}, r"optimizer.muon_momentum=1.0: must be in"),
        (
            OptimizerConfig,
            {"muon_adjust_lr": "moonshot"},
            "optimizer.muon_adjust_lr='moonshot': must be one of original, match_rms_adamw",
        ),
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


def muon_model(tied: bool = True) -> GPT:
    torch.manual_seed(0)
    return GPT(
        GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, d_model=16, tie_weights=tied)
    )


@pytest.mark.parametrize("tied", [True, False])
def test_muon_takes_the_blocks_matrices_and_adamw_the_rest(tied):
    model = muon_model(tied)
    optimizer = build_optimizer(model, OptimizerConfig(algorithm="muon", lr=1e-3, muon_lr=0.03))
    muon, adamw = optimizer.parts
    assert isinstance(muon, torch.optim.Muon) and isinstance(adamw, torch.optim.AdamW)
    names = {id(p): n for n, p in model.named_parameters()}
    muon_names = {names[id(p)] for g in muon.param_groups for p in g["params"]}
    adamw_names = {names[id(p)] for g in adamw.param_groups for p in g["params"]}
    assert muon_names == {
        f"blocks.{i}.{layer}.weight"
        for i in range(2)
        for layer in ("attn.qkv", "attn.proj", "mlp.fc", "mlp.proj")
    }
    assert not muon_names & adamw_names and muon_names | adamw_names == set(names.values())
    assert "token_embedding.weight" in adamw_names and ("head.weight" in adamw_names) != tied
    assert [g["lr"] for g in muon.param_groups] == [0.03]
    assert {g["lr"] for g in adamw.param_groups} == {1e-3}
    assert optimizer.param_groups == muon.param_groups + adamw.param_groups


def test_the_schedule_scales_both_rates():
    model = muon_model()
    optimizer = build_optimizer(model, OptimizerConfig(algorithm="muon", lr=1e-3, muon_lr=0.04))
    schedule = ScheduleConfig(decay_steps=10, warmup_steps=4)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule.lr_factor)
    for step in range(6):
        factor = schedule.lr_factor(step)
        muon, adamw = optimizer.parts
        assert muon.param_groups[0]["lr"] == pytest.approx(0.04 * factor)
        assert adamw.param_groups[0]["lr"] == pytest.approx(1e-3 * factor)
        optimizer.zero_grad()
        model(*torch.randint(0, 11, (2, 2, 8)))[1].backward()
        optimizer.step()
        scheduler.step()


def test_muon_state_round_trip_continues_like_the_uninterrupted_optimizer():
    """Saved after 3 steps and loaded into a fresh model and optimizer, 3 more steps give the
    weights 6 uninterrupted steps give: both parts' states and rates survive."""
    config = OptimizerConfig(algorithm="muon", lr=3e-3, muon_lr=0.05)
    batches = [torch.randint(0, 11, (2, 2, 8)) for _ in range(6)]

    def steps(model, optimizer, scheduler, chunk):
        for x, y in chunk:
            optimizer.zero_grad()
            model(x, y)[1].backward()
            optimizer.step()
            scheduler.step()

    def fresh():
        model = muon_model()
        optimizer = build_optimizer(model, config)
        schedule = ScheduleConfig(decay_steps=6, warmup_steps=2)
        return model, optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, schedule.lr_factor)

    unbroken = fresh()
    steps(*unbroken, batches)
    first = fresh()
    steps(*first, batches[:3])
    saved = {
        "model": first[0].state_dict(),
        "optimizer": first[1].state_dict(),
        "scheduler": first[2].state_dict(),
    }
    assert {"momentum_buffer"} in [set(s) for s in saved["optimizer"]["state"].values()]
    resumed = fresh()
    resumed[0].load_state_dict(saved["model"])
    resumed[1].load_state_dict(saved["optimizer"])
    resumed[2].load_state_dict(saved["scheduler"])
    assert isinstance(resumed[1], MuonWithAdamW)
    steps(*resumed, batches[3:])
    pairs = zip(unbroken[0].state_dict().items(), resumed[0].state_dict().values(), strict=True)
    for (name, a), b in pairs:
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)


def test_a_muon_state_saved_without_a_newer_setting_loads_and_steps():
    """A group saved by an older PyTorch lacks settings a newer one added: they get defaults."""
    model = muon_model()
    optimizer = build_optimizer(model, OptimizerConfig(algorithm="muon"))
    state = optimizer.state_dict()
    for group in state["param_groups"]:
        group.pop("foreach" if group["name"] != "muon" else "nesterov")
    optimizer.load_state_dict(state)
    model(*torch.randint(0, 11, (2, 2, 8)))[1].backward()
    optimizer.step()
    assert optimizer.parts[0].param_groups[0]["nesterov"] is True
