"""Sample text from a checkpoint.

    python -m chargpt.sample ckpt=PATH prompt="ROMEO:" max_new_tokens=500 temperature=0.8 \\
        top_k=40 top_p=0.95 seed=1 num_samples=3 batch_size=64 device=cpu dtype=float32

temperature=0 decodes greedily; `stop` ends each sample at the first occurrence of a character.
Samples are generated batch_size at a time (default 64) and printed as each batch is done; the
first batch uses `seed`, later ones a seed derived from it and their number, so up to
batch_size samples are the same whatever batch_size is. One batch holds at most 2**24 tokens
(batch_size x (prompt + max_new_tokens)). device is cpu, cuda, cuda:N or mps; dtype=bfloat16
or float16 runs the model under autocast (as training with trainer=gpu does), float32 without.
Past the model's block_size, window=slide (default) keeps the last block_size characters in view;
window=halve keeps the last half and lets it fill up again: with the KV cache 2-8x faster
(more the longer the context), with other samples once the window first moves.
"""

from __future__ import annotations

import difflib
import sys
from collections.abc import Iterator
from dataclasses import dataclass, fields

import torch
from omegaconf import OmegaConf

from chargpt.cli import run_command
from chargpt.errors import SettingError
from chargpt.model.sampling import SAMPLING_KEYS, SamplingConfig, generate_batches
from chargpt.runs.checkpoint import check_device, load_checkpoint

# The command's defaults: longer samples than those printed during training, and its own seed.
DEFAULT_SAMPLING = SamplingConfig(max_new_tokens=500, temperature=0.8, seed=1337)


@dataclass(frozen=True)
class SampleArgs:
    """The command's own keys; the sampling settings are given by SamplingConfig's names."""

    ckpt: str
    sampling: SamplingConfig = DEFAULT_SAMPLING
    batch_size: int = 64
    device: str = "cpu"
    dtype: str = "float32"


# Autocast's 16-bit types; float32: no autocast.
DTYPES: dict[str, torch.dtype | None] = {
    "float32": None,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}
# Taken verbatim: as YAML, prompt="ROMEO:" would become a mapping and "${x}" a reference.
TEXT_KEYS = ("ckpt", "prompt", "stop", "device", "dtype")


def defaults() -> dict[str, object]:
    """Every key the command takes, with its default (ckpt has none): its own, then sampling's."""
    own = {f.name: f.default for f in fields(SampleArgs) if f.name != "sampling"}
    own["ckpt"] = None
    sampling = {key: getattr(DEFAULT_SAMPLING, key) for key in SAMPLING_KEYS}
    return own | sampling


def check_key(key: str) -> None:
    """An unknown key fails in one line naming the nearest one (`top_kk` -> top_k)."""
    known = defaults()
    name = key.split(".")[0]
    if name in known and name == key:
        return
    # `sampling.top_k=3`: the settings go by their own names.
    close = difflib.get_close_matches(name, known, n=1) or difflib.get_close_matches(
        key.rpartition(".")[2], known, n=1
    )
    hint = f"did you mean {close[0]}?" if close else f"the keys are {', '.join(known)}"
    raise SettingError(f"{key}: not a key of chargpt.sample ({hint}); --help lists them all")


def parse_args(argv: list[str]) -> SampleArgs:
    """key=value arguments: the sampling settings checked against `SamplingConfig`, the others
    against `SampleArgs` (unknown keys and bad types fail)."""
    texts: dict[str, str] = {}
    sampling_args, command_args = [], []
    for arg in argv:
        key, equals, value = arg.partition("=")
        if not equals:
            raise SettingError(f"arguments are key=value pairs, got {arg!r}; see --help")
        check_key(key)
        if key in TEXT_KEYS:
            texts[key] = value
        # A key `sampling` goes there too, to be refused: settings go by name, top_k=40.
        elif key.split(".")[0] in (*SAMPLING_KEYS, "sampling"):
            sampling_args.append(arg)
        else:
            command_args.append(arg)
    if "ckpt" not in texts:
        raise SettingError("ckpt=PATH is required: the .ckpt file written by run.py")
    sampling_texts = {key: texts.pop(key) for key in SAMPLING_KEYS if key in texts}
    settings = _merged(OmegaConf.structured(DEFAULT_SAMPLING), sampling_args) | sampling_texts
    command = _merged(OmegaConf.structured(SampleArgs), command_args)
    del command["sampling"]  # built from the settings merged above, checked once
    return SampleArgs(**(command | texts), sampling=SamplingConfig(**settings))


def _merged(schema: object, dotlist: list[str]) -> dict:
    """The schema's values with those of `dotlist`, typed by the schema, as a plain dict."""
    return OmegaConf.to_container(OmegaConf.merge(schema, OmegaConf.from_dotlist(dotlist)))


def check_args(args: SampleArgs) -> None:
    """What can be checked without the checkpoint, so a bad setting fails before it is read."""
    check_device(args.device)
    if args.dtype not in DTYPES:
        raise SettingError(f"dtype={args.dtype!r}: must be one of {', '.join(DTYPES)}")
    args.sampling.check_output_size(args.batch_size)


def generate_samples(args: SampleArgs) -> Iterator[list[str]]:
    """The samples, one batch of at most `args.batch_size` at a time."""
    check_args(args)
    model, tokenizer = load_checkpoint(args.ckpt, map_location=args.device)
    batches = generate_batches(model, tokenizer, args.sampling, args.batch_size)
    dtype = DTYPES[args.dtype]
    device_type = next(model.parameters()).device.type
    while True:  # autocast around each batch only, not while the caller prints it
        with torch.autocast(device_type, dtype=dtype, enabled=dtype is not None):
            texts = next(batches, None)
        if texts is None:
            return
        yield texts


def help_text() -> str:
    """The module's description, then every key with its default, as the command line takes it."""
    width = max(map(len, defaults()))
    shown = {key: _shown(value) for key, value in defaults().items()}
    shown["ckpt"] = "required: the .ckpt file run.py wrote"
    lines = [f"  {key:<{width}}  {text}" for key, text in shown.items()]
    return f"{__doc__.rstrip()}\n\nKeys (key=value) and their defaults:\n" + "\n".join(lines)


def _shown(value: object) -> str:
    """As written on the command line; text quoted so that a newline prompt shows as \\n."""
    if value is None:
        return "none"
    return repr(value) if isinstance(value, str) else str(value)


def main(argv: list[str] | None = None) -> int:
    return run_command("chargpt.sample", _print_samples, argv, config_errors=True)


def _print_samples(argv: list[str]) -> None:
    """Print the samples as each batch is done, `---` between them."""
    if argv and argv[0] in ("-h", "--help"):
        print(help_text())
        return
    printed = 0
    try:
        for texts in generate_samples(parse_args(argv)):
            for text in texts:
                sys.stdout.write(("\n---\n" if printed else "") + text)
                printed += 1
            sys.stdout.flush()
    finally:
        if printed:  # end the last line, also before an error line
            print(flush=True)


if __name__ == "__main__":
    sys.exit(main())
