"""SampleCallback: samples at each validation."""

from __future__ import annotations

import pytest
import torch
from helpers import tiny_setup

from chargpt.errors import SettingError
from chargpt.model.sampling import SamplingConfig
from chargpt.sample import main as sample_command
from chargpt.training.callbacks.samples import SampleCallback


def test_sample_window_is_the_one_generation_uses(play_file):
    """Past block_size (16) the two windows see other contexts; within it, the same."""
    _, module, _ = tiny_setup(play_file)
    with torch.no_grad():  # peaked, context-sensitive predictions instead of near-uniform ones
        for p in module.model.parameters():
            p.mul_(20.0)
    samples = {
        window: SampleCallback(prompt="A", max_new_tokens=40, seed=1, window=window).sample(module)
        for window in ("slide", "halve")
    }
    assert samples["slide"][:17] == samples["halve"][:17]
    assert samples["slide"] != samples["halve"]


def test_the_settings_are_a_sampling_config():
    callback = SampleCallback(prompt="A", top_k=3, num_samples=2)
    assert callback.sampling == SamplingConfig(prompt="A", top_k=3, num_samples=2)


def test_an_unknown_setting_is_named_with_its_config_key():
    with pytest.raises(SettingError, match=r"^callbacks\.sample\.promt: not a sampling setting"):
        SampleCallback(promt="A")


# The same bad value given to `python -m chargpt.sample` and as callbacks.sample.<key>: the first
# six are refused when the callback is created, the others at fit start (they need the model).
BAD_VALUES = [
    ("temperature", -0.5),
    ("top_k", 0),
    ("top_p", 1.5),
    ("stop", "ab"),
    ("window", "crop"),
    ("prompt", ""),
    ("prompt", "ALL#@"),
    ("stop", "#"),
    ("top_k", 1000),
    ("max_new_tokens", 100_000_000),
]


@pytest.mark.parametrize(("key", "value"), BAD_VALUES)
def test_callback_and_command_refuse_a_bad_value_with_the_same_message(
    capsys, play_file, trained_checkpoint, key, value
):
    """The fixture checkpoint and the callback's module share the play's vocabulary."""
    assert sample_command([f"ckpt={trained_checkpoint}", f"{key}={value}"]) == 2
    command_error = capsys.readouterr().err.removeprefix("chargpt.sample: error: ").rstrip("\n")
    _, module, _ = tiny_setup(play_file)
    with pytest.raises(SettingError) as error:
        SampleCallback(**{key: value}).check(module)
    assert str(error.value) == f"callbacks.sample.{command_error}"
    assert command_error.startswith(key)


def test_fit_start_checks_the_settings_against_the_model(play_file):
    trainer, module, datamodule = tiny_setup(play_file, max_steps=1)
    callback = SampleCallback(prompt="Q")  # a character the play lacks
    trainer.callbacks.append(callback)
    with pytest.raises(SettingError, match=r"^callbacks\.sample\.prompt='Q' has characters"):
        trainer.fit(module, datamodule=datamodule)
