"""Every option of every config group, and every experiment, composes and instantiates."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, open_dict

from chargpt.runs.compose import compose_config

PROJECT_ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = PROJECT_ROOT / "conf"

# Groups whose options are objects run.py builds (hydra and paths are plain settings).
GROUPS = ["data", "model/size", "optimizer", "scheduler", "trainer", "callbacks", "logger"]


def group_options() -> list[tuple[str, str]]:
    return [
        (group, path.stem) for group in GROUPS for path in sorted((CONF_DIR / group).glob("*.yaml"))
    ]


def experiments() -> list[str]:
    return sorted(p.stem for p in (PROJECT_ROOT / "experiments").glob("*.yaml"))


def compose_train(tmp_path: Path, overrides: list[str]) -> DictConfig:
    cfg = compose_config(overrides, tmp_path)
    with open_dict(cfg):
        cfg.model.vocab_size = 65
    return cfg


def instantiate_all(cfg: DictConfig) -> None:
    config = instantiate(cfg.model)
    assert config.vocab_size == 65
    instantiate(cfg.data)
    instantiate(cfg.optimizer, _convert_="all")
    instantiate(cfg.scheduler)
    callbacks = [instantiate(node) for node in cfg.callbacks.values()]
    loggers = [instantiate(node) for node in cfg.logger.values()]
    if cfg.trainer.accelerator == "gpu" and not torch.cuda.is_available():
        return  # composes; building a GPU trainer needs a GPU
    instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)


@pytest.mark.parametrize(("group", "option"), group_options())
def test_every_group_option_composes_and_instantiates(tmp_path, group, option):
    overrides = [f"{group}={option}"]
    if (group, option) == ("data", "text"):
        overrides.append("data.path=some.txt")
    cfg = compose_train(tmp_path, overrides)
    instantiate_all(cfg)


@pytest.mark.parametrize("experiment", experiments())
def test_every_experiment_composes_and_instantiates(tmp_path, experiment):
    cfg = compose_train(tmp_path, [f"experiment={experiment}"])
    instantiate_all(cfg)


def test_size_preset_beats_base_and_command_line_beats_both(tmp_path):
    cfg = compose_train(tmp_path, ["model/size=medium"])
    assert (cfg.model.d_model, cfg.model.n_layer, cfg.model.n_head) == (256, 8, 16)
    cfg = compose_train(tmp_path, ["model/size=medium", "model.n_layer=3"])
    assert (cfg.model.d_model, cfg.model.n_layer) == (256, 3)


def test_unknown_key_fails_at_instantiate(tmp_path):
    cfg = compose_train(tmp_path, ["+model.n_layers=3"])
    with pytest.raises(Exception, match="n_layers"):
        instantiate(cfg.model)


def test_env_sets_the_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("CHARGPT_DATA_DIR", "/corpora")
    assert compose_train(tmp_path, []).paths.data_dir == "/corpora"
    monkeypatch.delenv("CHARGPT_DATA_DIR")
    assert compose_train(tmp_path, []).paths.data_dir == str(PROJECT_ROOT / "data")
