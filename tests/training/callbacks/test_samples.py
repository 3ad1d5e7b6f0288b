"""SampleCallback: samples at each validation."""

from __future__ import annotations

import torch
from helpers import tiny_setup

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
