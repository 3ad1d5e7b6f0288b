"""Rebuild a model and its tokenizer from a training checkpoint alone, without Lightning.

A checkpoint read from disk is untrusted, so `load_checkpoint` checks it before it allocates
anything that the file's own size does not already bound, in this order:

1. the device (`check_device`), before the file is opened;
2. the file: read with `torch.load(weights_only=True, mmap=True)`, so no pickled code ever runs
   and no tensor is read into memory yet (every tensor is a view of the mapped file, so it is no
   larger than the file); torch's legacy non-zip format is refused, as its loader allocates
   whatever sizes the file claims before reading them;
3. the structure: `hyper_parameters` holds a `model` dict (validated by `GPTConfig`) and a
   `tokenizer` {"chars": distinct 1-character strings}; `state_dict` maps names to tensors;
4. the sizes, bounded before the model is even built on the meta device (no memory):
   vocab_size <= 0x110000 (the Unicode code points) and equal to the tokenizer's size; n_layer
   equal to the number of transformer blocks (`blocks.N.*`) in the weights;
5. the sizes against the weights: the meta model's state dict has exactly the checkpoint's
   names and shapes, and floating weights; the model holds no more numbers than the file stores
   (no tensors aliased to inflate it); the buffers the model builds but does not save
   (`persistent=False`) take at most the saved weights' bytes + 64 MiB;
6. finite weights: a NaN or inf means the run diverged before it was saved.

Only then is the real model built on the CPU, loaded, and moved to the device.
Each failure is a `CheckpointError` (a `DeviceError` for the device) with a one-line message.
"""

from __future__ import annotations

import os
import pickle
import re
import zipfile
from pathlib import Path

import torch
from torch import Tensor

from chargpt.data.tokenizer import CharTokenizer
from chargpt.errors import ChargptError, SettingError
from chargpt.model import GPT, ConfigError, GPTConfig

MODEL_PREFIX = "model."  # the GPT is the LightningModule's attribute `model`
MAX_VOCAB_SIZE = 0x110000  # one token per character: at most every Unicode code point
UNSAVED_BUFFER_ALLOWANCE = 64 * 2**20  # bytes of non-persistent buffers beyond the weights'
BLOCK_KEY = re.compile(r"blocks\.(\d+)\.")  # GPT.blocks is an nn.ModuleList
ZIP_MAGIC = b"PK\x03\x04"  # what torch.save has written since torch 1.6
# How the legacy format starts: torch's magic number, pickled (protocol 2, without the STOP).
LEGACY_MAGIC = pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2)[:-1]
DEVICE_CHOICES = "use cpu, cuda, cuda:N or mps"
REDO = "use a checkpoint as run.py wrote it"


class CheckpointError(ChargptError, RuntimeError):
    """A file cannot be used as a chargpt checkpoint; the message says why."""


class DeviceError(SettingError):
    """A device setting that does not name a device PyTorch can use here."""


def check_device(device: str | torch.device) -> torch.device:
    """`device` parsed, if PyTorch can use it here: cpu, or an available cuda(:N) or mps."""
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise DeviceError(f"device={device!r} is not a device: {DEVICE_CHOICES}") from None
    if parsed.type not in ("cpu", "cuda", "mps"):
        raise DeviceError(f"device={device}: not supported here, {DEVICE_CHOICES}")
    if parsed.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            build = "" if torch.version.cuda or torch.version.hip else ", built without CUDA"
            raise DeviceError(
                f"device={device}: PyTorch sees no GPU here (torch {torch.__version__}{build}); "
                "use device=cpu"
            )
        if parsed.index is not None and parsed.index >= count:
            raise DeviceError(
                f"device={device}: PyTorch sees {count} GPU(s) here, cuda:0 to cuda:{count - 1}; "
                "use one of them or device=cpu"
            )
    if parsed.type == "mps" and not torch.backends.mps.is_available():
        raise DeviceError(
            f"device={device}: PyTorch sees no Apple GPU (MPS) here (torch {torch.__version__}); "
            "use device=cpu"
        )
    return parsed


def load_checkpoint(
    path: str | os.PathLike, map_location: str | torch.device = "cpu"
) -> tuple[GPT, CharTokenizer]:
    """The GPT (in eval mode, on `map_location`) and tokenizer stored in a `.ckpt` of `run.py`.

    Every check of the module docstring runs first; each failure raises one `CheckpointError`.
    """
    device = check_device(map_location)
    path = Path(path)
    config, tokenizer, weights = _parts(path, _read(path))
    _check_sizes(path, config, weights)
    _check_finite(path, weights)
    model = GPT(config)
    try:
        model.load_state_dict(weights)
    except RuntimeError as error:  # the checks above make this unexpected
        raise CheckpointError(
            f"{path}: its weights do not fit its model config ({str(error).splitlines()[0]})"
        ) from None
    return model.to(device).eval(), tokenizer


def _read(path: Path) -> object:
    """What the file holds, its tensors mapped from disk, not read."""
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    with path.open("rb") as file:
        zipped = file.read(len(ZIP_MAGIC)) == ZIP_MAGIC
    if not zipped:
        legacy = _is_legacy_torch_file(path)
        raise CheckpointError(
            f"{path} is in torch's legacy non-zip format, whose sizes cannot be checked before "
            "they are allocated: save it again with torch.save of torch >= 1.6"
            if legacy
            else f"{path} is not a readable checkpoint: not a .ckpt written by torch.save"
        )
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
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


def _is_legacy_torch_file(path: Path) -> bool:
    """Whether the file starts as torch.save's legacy format does: the pickled magic number."""
    with path.open("rb") as file:
        head = file.read(32)
    return head.startswith(LEGACY_MAGIC)


def _parts(path: Path, checkpoint: object) -> tuple[GPTConfig, CharTokenizer, dict[str, Tensor]]:
    """The config, tokenizer and model weights, checked for their types and their agreement."""
    hparams = checkpoint.get("hyper_parameters") if isinstance(checkpoint, dict) else None
    state = checkpoint.get("state_dict") if isinstance(checkpoint, dict) else None
    if not isinstance(hparams, dict) or not isinstance(state, dict):
        raise CheckpointError(
            f"{path} is not a chargpt checkpoint (no hyper_parameters and state_dict dicts): {REDO}"
        )
    model, vocab = hparams.get("model"), hparams.get("tokenizer")
    chars = vocab.get("chars") if isinstance(vocab, dict) else None
    if not isinstance(model, dict) or not isinstance(chars, list):
        raise CheckpointError(
            f"{path} is not a chargpt checkpoint (hyper_parameters needs a model dict and a "
            f"tokenizer with a chars list): {REDO}"
        )
    # Checkpoints from before `compile` became a training setting hold it among the model's.
    model = {key: value for key, value in model.items() if key != "compile"}
    try:
        config = GPTConfig(**model)
    except (ConfigError, TypeError) as error:
        raise CheckpointError(f"{path}: its model config is invalid ({error}); {REDO}") from None
    if config.vocab_size > MAX_VOCAB_SIZE:
        raise CheckpointError(
            f"{path}: model.vocab_size={config.vocab_size} exceeds the {MAX_VOCAB_SIZE} Unicode "
            f"code points a character vocabulary can hold; {REDO}"
        )
    if not all(isinstance(c, str) for c in chars):
        raise CheckpointError(f"{path}: its tokenizer's chars are not all strings; {REDO}")
    try:
        tokenizer = CharTokenizer(chars)
    except ValueError as error:
        raise CheckpointError(f"{path}: its tokenizer is invalid ({error}); {REDO}") from None
    if tokenizer.vocab_size != config.vocab_size:
        raise CheckpointError(
            f"{path}: its tokenizer has {tokenizer.vocab_size} characters but "
            f"model.vocab_size={config.vocab_size}; {REDO}"
        )
    return config, tokenizer, _model_weights(path, state)


def _model_weights(path: Path, state: dict) -> dict[str, Tensor]:
    """The GPT's entries of a LightningModule state dict, without their `model.` prefix."""
    weights = {}
    for key, value in state.items():
        if not isinstance(key, str):
            raise CheckpointError(f"{path}: its state_dict has a key {key!r} that is not a name")
        if not key.startswith(MODEL_PREFIX):
            continue  # other parts of the LightningModule, not the GPT
        if not isinstance(value, Tensor) or value.layout != torch.strided:
            raise CheckpointError(f"{path}: {key} in its state_dict is not a dense tensor; {REDO}")
        if not value.is_floating_point():
            raise CheckpointError(
                f"{path}: {key} in its state_dict holds {value.dtype}, not floating-point "
                f"weights; {REDO}"
            )
        weights[key.removeprefix(MODEL_PREFIX)] = value
    return weights


def _check_sizes(path: Path, config: GPTConfig, weights: dict[str, Tensor]) -> None:
    """The model the config describes has the weights' names and shapes, and fits in them."""
    blocks = {int(match.group(1)) for key in weights if (match := BLOCK_KEY.match(key))}
    if config.n_layer != len(blocks):
        raise CheckpointError(
            f"{path}: its weights do not fit its model config: model.n_layer={config.n_layer} "
            f"but the weights hold {len(blocks)} transformer block(s) (blocks.N.*); {REDO}"
        )
    try:
        with torch.device("meta"):  # shapes only: no memory, however large the config
            model = GPT(config)
    except (RuntimeError, ValueError, OverflowError) as error:
        raise CheckpointError(
            f"{path}: its model config describes a model that cannot be built "
            f"({str(error).splitlines()[0]}); {REDO}"
        ) from None
    # The tensors themselves, not copies: matched by identity, not by name, since GPT saves some
    # under names of their own (`gpt.SAVED_NAMES`), and a tied matrix, saved twice, counts once.
    expected = model.state_dict(keep_vars=True)
    _check_names_and_shapes(path, expected, weights)
    saved = {id(tensor): tensor for tensor in expected.values()}
    stored = _stored_numbers(weights.values())
    needed = sum(tensor.numel() for tensor in saved.values())
    if needed > stored:
        raise CheckpointError(
            f"{path}: its weights share storage: the model would hold {needed} numbers but the "
            f"file stores {stored}; {REDO}"
        )
    unsaved = sum(b.numel() * b.element_size() for b in model.buffers() if id(b) not in saved)
    allowed = sum(w.numel() * w.element_size() for w in weights.values())
    if unsaved > allowed + UNSAVED_BUFFER_ALLOWANCE:
        raise CheckpointError(
            f"{path}: its model config would build {unsaved} bytes of buffers, more than its "
            f"weights' {allowed} bytes + {UNSAVED_BUFFER_ALLOWANCE}; {REDO}"
        )


def _check_names_and_shapes(
    path: Path, expected: dict[str, Tensor], weights: dict[str, Tensor]
) -> None:
    """The first missing, unexpected or misshapen weight, as an error."""
    problem = None
    for key, tensor in expected.items():
        if key not in weights:
            problem = f"{MODEL_PREFIX}{key} is missing"
        elif weights[key].shape != tensor.shape:
            problem = (
                f"{MODEL_PREFIX}{key} has shape {tuple(weights[key].shape)} in the file but "
                f"{tuple(tensor.shape)} in the model its config describes"
            )
        if problem:
            break
    else:
        extra = next((key for key in weights if key not in expected), None)
        if extra is not None:
            problem = f"{MODEL_PREFIX}{extra} is not part of the model its config describes"
    if problem:
        raise CheckpointError(f"{path}: its weights do not fit its model config: {problem}; {REDO}")


def _stored_numbers(tensors) -> int:
    """How many numbers the tensors' storages hold, each storage counted once."""
    storages = {}
    for tensor in tensors:
        storage = tensor.untyped_storage()
        storages[(storage.data_ptr(), storage.nbytes())] = storage.nbytes() // tensor.element_size()
    return sum(storages.values())


def _check_finite(path: Path, weights: dict[str, Tensor]) -> None:
    for key, tensor in weights.items():
        if not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(
                f"{path} holds non-finite values in {MODEL_PREFIX}{key}: the run diverged before "
                "it was saved; use an earlier checkpoint"
            )
