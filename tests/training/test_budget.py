"""Budgets in compute: max_tokens and max_flops derive the run's steps, and its schedule's."""

from __future__ import annotations

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf, open_dict

from chargpt.errors import ChargptError
from chargpt.model import GPT
from chargpt.model.parameters import training_flops_per_token
from chargpt.runs.compose import compose_config
from chargpt.training.budget import configured_processes, derive_max_steps

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
    model = GPT(instantiate(cfg.model))
    assert cost.flops_per_token == training_flops_per_token(model)
    assert cfg.trainer.max_steps == int(1e10 // (128 * training_flops_per_token(model)))


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
        (["trainer.max_tokens=100"], "trainer.max_tokens=100 is below one optimizer step (128 "),
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
