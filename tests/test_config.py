"""Every option of every config group, and every experiment, composes and instantiates."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from hydra.utils import get_object, instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict

from chargpt.errors import SettingError
from chargpt.model.sampling import SamplingConfig
from chargpt.runs.compose import compose_config
from chargpt.training.callbacks.samples import SampleCallback
from chargpt.training.precision import check_precision
from chargpt.training.trainer import check_settings, lightning_trainer_config

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
    trainer = instantiate(
        lightning_trainer_config(cfg.trainer), callbacks=callbacks, logger=loggers or False
    )
    # trainer.val_every_n_steps counts optimizer steps; Lightning's interval counts batches.
    assert trainer.val_check_interval == (
        cfg.trainer.val_every_n_steps * cfg.trainer.accumulate_grad_batches
    )


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


def test_validation_interval_counts_optimizer_steps_with_accumulation(tmp_path):
    cfg = compose_train(
        tmp_path, ["trainer.val_every_n_steps=7", "trainer.accumulate_grad_batches=3"]
    )
    settings = lightning_trainer_config(cfg.trainer)
    assert settings["val_check_interval"] == 21 and "val_every_n_steps" not in settings


@pytest.mark.parametrize(
    ("old", "new"),
    [("model.compile", "compile"), ("trainer.val_check_interval", "trainer.val_every_n_steps")],
)
def test_a_moved_key_set_in_a_config_file_names_its_new_key(tmp_path, old, new):
    cfg = compose_train(tmp_path, [f"+{old}=1"])  # as conf/local/default.yaml could set it
    with pytest.raises(SettingError) as error:
        check_settings(cfg)
    assert str(error.value).startswith(f"{old} is now {new} (")
    assert str(error.value).endswith(f"): set {new} instead")


# Folders of this machine (where the corpora are, where a run writes): not a default anywhere.
MACHINE_PATHS = "${paths."


def default_config_targets(node: Any, where: str = "") -> Iterator[tuple[str, DictConfig]]:
    """Every node with a `_target_` in `node` (a config, or a list such as trainer.plugins)."""
    if isinstance(node, DictConfig):
        if "_target_" in node:
            yield where, node
        children = [(f"{where}.{key}" if where else str(key), node._get_node(key)) for key in node]
    elif isinstance(node, ListConfig):
        children = [(f"{where}[{i}]", node._get_node(i)) for i in range(len(node))]
    else:
        return
    for name, child in children:
        yield from default_config_targets(child, name)


def own_defaults(target: str) -> dict[str, Any] | None:
    """The defaults of the parameters that chargpt's own code declares for `target`.

    None when the signature is another library's (a Lightning class, or a chargpt subclass
    that keeps its parent's `__init__`): those defaults are theirs, and the YAML may differ.
    """
    obj = get_object(target)
    if obj in SETTINGS_OF:  # takes **settings: the dataclass that holds them declares them
        return {f.name: f.default for f in dataclasses.fields(SETTINGS_OF[obj])}
    function = obj.__init__ if isinstance(obj, type) else obj
    if not getattr(function, "__module__", "").startswith("chargpt."):
        return None
    return {
        name: parameter.default
        for name, parameter in inspect.signature(function).parameters.items()
        if parameter.default is not inspect.Parameter.empty
    }


# Targets whose keyword arguments are a settings dataclass's fields.
SETTINGS_OF = {SampleCallback: SamplingConfig}


def plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def conf_targets() -> set[str]:
    """The chargpt `_target_`s that the files of conf/ name (Hydra's own settings aside)."""

    def walk(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "_target_":
                    yield value
                else:
                    yield from walk(value)
        elif isinstance(node, list):
            for value in node:
                yield from walk(value)

    files = [p for p in CONF_DIR.rglob("*.yaml") if "hydra" not in p.relative_to(CONF_DIR).parts]
    return {
        target
        for path in files
        for target in walk(OmegaConf.to_container(OmegaConf.load(path)))
        if target.startswith("chargpt.")
    }


def test_yaml_values_and_signature_defaults_are_one_source(tmp_path):
    """One source of defaults: where conf/ and a target's signature both give a value, they agree.

    Checked on the default run config (conf/train.yaml as it is, size preset included), whose
    values are what a Python default stands for; values that come from another key (`${...}`)
    are compared as resolved. A group's other options (data=names) differ on purpose.
    """
    seen, disagreements = set(), []
    nodes = [*default_config_targets(compose_train(tmp_path, []))]
    # The loggers the default leaves out (logger=many: csv, tensorboard, wandb).
    nodes += default_config_targets(compose_train(tmp_path, ["logger=many"]))
    for where, node in nodes:
        seen.add(node._target_)
        defaults = own_defaults(node._target_)
        for key in [] if defaults is None else node:
            if key == "_target_" or key not in defaults:
                continue
            raw = OmegaConf.to_container(node, resolve=False)[key]
            if isinstance(raw, str) and raw.startswith(MACHINE_PATHS):
                continue
            value = OmegaConf.to_container(node, resolve=True)[key]
            if plain(value) != plain(defaults[key]):
                disagreements.append(
                    f"{where}.{key}: {value!r} in conf/, {defaults[key]!r} in code"
                )
    assert not disagreements
    assert conf_targets() <= seen  # every chargpt target of conf/ was checked


@pytest.mark.parametrize("precision", ["bogus", "bf16-mix", True, 8])
def test_an_unknown_precision_is_one_line(tmp_path, precision):
    cfg = compose_train(tmp_path, [f"trainer.precision={str(precision).lower()}"])
    with pytest.raises(SettingError, match=r"trainer\.precision=.*must be auto or one of 32-true"):
        check_settings(cfg)


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed", "16-mixed", "32", "bf16"])
def test_lightnings_precisions_are_accepted(tmp_path, precision):
    check_precision(compose_train(tmp_path, [f"trainer.precision={precision}"]).trainer.precision)
