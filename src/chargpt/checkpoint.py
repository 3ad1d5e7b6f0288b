"""Rebuild a model and its tokenizer from a training checkpoint alone, without Lightning.

A checkpoint holds plain data (the GPT config, the vocabulary) beside the weights, so loading
uses `torch.load(weights_only=True)`: no pickled code is ever run.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path

import torch

from chargpt.data.tokenizer import CharTokenizer
from chargpt.errors import ChargptError
from chargpt.model import GPT, GPTConfig

MODEL_PREFIX = "model."  # the GPT is the LightningModule's attribute `model`


class CheckpointError(ChargptError, RuntimeError):
    """A file cannot be used as a chargpt checkpoint; the message says why."""


def load_checkpoint(
    path: str | os.PathLike, map_location: str | torch.device = "cpu"
) -> tuple[GPT, CharTokenizer]:
    """The GPT (in eval mode) and tokenizer stored in a `.ckpt` written by `run.py`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        # torch's message suggests weights_only=False, which would run whatever the file holds.
        raise CheckpointError(
            f"{path} is not a readable checkpoint: it is not a .ckpt, or it holds objects "
            "other than plain data, which are never loaded"
        ) from None
    except (zipfile.BadZipFile, EOFError, OSError, RuntimeError, KeyError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error)
        raise CheckpointError(
            f"{path} is not a readable checkpoint (truncated, corrupt, or not a .ckpt): "
            f"{first_line}"
        ) from None
    try:
        hparams = checkpoint["hyper_parameters"]
        config = GPTConfig(**hparams["model"])
        tokenizer = CharTokenizer.from_dict(hparams["tokenizer"])
        weights = {
            key.removeprefix(MODEL_PREFIX): value
            for key, value in checkpoint["state_dict"].items()
            if key.startswith(MODEL_PREFIX)
        }
    except (KeyError, TypeError) as error:
        raise CheckpointError(f"{path} is not a chargpt checkpoint (missing {error})") from None
    model = GPT(config)
    try:
        model.load_state_dict(weights)
    except RuntimeError as error:
        raise CheckpointError(
            f"{path}: its weights do not fit its model config ({str(error).splitlines()[0]})"
        ) from None
    return model.to(map_location).eval(), tokenizer
