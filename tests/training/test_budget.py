"""Budgets in compute: max_tokens and max_flops derive the run's steps, and its schedule's."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf, open_dict

from chargpt.errors import ChargptError
from chargpt.runs.compose import compose_config
from chargpt.training.budget import (
    StepCost,
    check_processes,
    configured_processes,
    derive_max_steps,
)
from chargpt.training.trainer import check_settings

SMALL_STEP = ["model/size=tiny", "model.block_size=16", "data.batch_size=8"]  # 128 tokens/step


def config(tmp_path, *overrides: str):
    cfg = compose_config([*SMALL_STEP, *overrides], tmp_path)
    with open_dict(cfg):
        cfg.model.vocab_size = 65
    return cfg


def test_max_tokens_derives_whole_steps_within_the_budget(tmp_path):
    cfg = config(tmp_path, "trainer.max_tokens=1300", "trainer.accumulate_grad_batches=2")
    cost = derive_max_steps(cfg)
    assert cost.tokens_per_step == 8 * 16 * 2
    assert cfg.trainer.max_steps == 1300 // 256 == 5  # never more than the budget
    # The cosine schedule follows the derived length, through its interpolation.
    assert instantiate(cfg.scheduler).decay_steps == 5


def test_max_flops_divides_by_the_models_flops_per_step(tmp_path):
    cfg = config(tmp_path, "trainer.max_flops=1e10")
    cost = derive_max_steps(cfg)
    # By hand, tiny at context 16 with 65 characters: per block attention 4·64²+4·64 and MLP
    # 8·64²+5·64 weights, 2 blocks, head 65·64: N = 103,616; 6N + 12·2·64·16 = 646,272.
    assert cost.flops_per_token == 646_272
    assert cfg.trainer.max_steps == int(1e10 // (128 * 646_272)) == 120


def test_the_processes_multiply_the_tokens_per_step(tmp_path):
    cfg = config(tmp_path, "trainer=ddp_cpu", "trainer.max_tokens=2560")
    assert derive_max_steps(cfg).tokens_per_step == 256
    assert cfg.trainer.max_steps == 10


def test_without_a_budget_max_steps_stands(tmp_path):
    cfg = config(tmp_path, "trainer.max_steps=7")
    assert derive_max_steps(cfg) is None
    assert cfg.trainer.max_steps == 7


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["trainer.max_tokens=100"],
            "trainer.max_tokens=100 is below one optimizer step, which takes 128 tokens (batch × ",
        ),
        (["trainer.max_flops=1000"], "trainer.max_flops=1000 is below one optimizer step"),
        (["trainer.max_tokens=-5"], "trainer.max_tokens=-5: must be a positive number"),
        (["trainer.max_tokens=lots"], "trainer.max_tokens='lots': must be a positive number"),
        (["trainer.max_tokens=true"], "must be a positive number"),
        (["trainer.max_tokens=1e6", "trainer.max_flops=1e12"], "both set; a run has one budget"),
    ],
)
def test_bad_budgets_are_one_line_errors(tmp_path, overrides, message):
    cfg = config(tmp_path, *overrides)
    with pytest.raises(ChargptError) as error:
        derive_max_steps(cfg)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_max_steps_on_the_command_line_beside_a_budget_is_an_error(tmp_path):
    cfg = config(tmp_path, "trainer.max_tokens=1300")
    with pytest.raises(ChargptError) as error:
        derive_max_steps(cfg, ["model/size=tiny", "trainer.max_steps=20"])
    assert str(error.value) == (
        "trainer.max_steps=20 and trainer.max_tokens=1300 both set the run's length; count "
        "steps with trainer.max_tokens=null, or change trainer.max_tokens instead"
    )


def test_a_budget_lets_max_steps_be_null_and_the_schedule_is_checked_once_derived(tmp_path):
    # warm-up 1500 is fine for the 3,000 steps the budget derives, not for the default 1,000
    cfg = config(tmp_path, "trainer.max_tokens=384000", "scheduler.warmup_steps=1500")
    with open_dict(cfg):
        cfg.trainer.max_steps = None
    check_settings(cfg)
    derive_max_steps(cfg)
    assert instantiate(cfg.scheduler).decay_steps == 3000


def test_lightning_running_another_number_of_processes_than_assumed_is_an_error():
    cost = StepCost(tokens_per_step=256, flops_per_token=10, processes=2)
    check_processes(SimpleNamespace(world_size=2), cost)
    check_processes(SimpleNamespace(world_size=1), None)  # no budget: nothing was assumed
    with pytest.raises(ChargptError, match=r"assumed 2 processes .* Lightning runs 1"):
        check_processes(SimpleNamespace(world_size=1), cost)


@pytest.mark.parametrize(
    ("devices", "nodes", "expected"),
    [(1, 1, 1), (2, 1, 2), (2, 3, 6), ("3", 1, 3), ([0, 1], 1, 2), ("0,1", 2, 4)],
)
def test_processes_as_the_config_names_them(devices, nodes, expected):
    trainer = OmegaConf.create({"devices": devices, "num_nodes": nodes, "accelerator": "cpu"})
    assert configured_processes(trainer) == expected


def test_auto_devices_on_the_cpu_is_one_process():
    trainer = OmegaConf.create({"devices": "auto", "accelerator": "cpu"})
    assert configured_processes(trainer) == 1
