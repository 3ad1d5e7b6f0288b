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

import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace

import torch
from omegaconf import MISSING, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from chargpt.errors import ChargptError, SettingError, one_line
from chargpt.model.generate import check_output_size, generate_batches
from chargpt.runs.checkpoint import check_device, load_checkpoint


@dataclass
class SampleArgs:
    ckpt: str = MISSING
    prompt: str = "\n"
    max_new_tokens: int = 500
    temperature: float = 0.8
    top_k: int | None = None
    top_p: float | None = None
    seed: int = 1337
    num_samples: int = 1
    batch_size: int = 64
    stop: str | None = None
    window: str = "slide"
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


def parse_args(argv: list[str]) -> SampleArgs:
    """key=value arguments, checked against `SampleArgs` (unknown keys and bad types fail)."""
    texts, others = {}, []
    for arg in argv:
        key, equals, value = arg.partition("=")
        if not equals:
            raise SettingError(f"arguments are key=value pairs, got {arg!r}; see --help")
        if key in TEXT_KEYS:
            texts[key] = value
        else:
            others.append(arg)
    if "ckpt" not in texts:
        raise SettingError("ckpt=PATH is required: the .ckpt file written by run.py")
    merged = OmegaConf.merge(OmegaConf.structured(SampleArgs), OmegaConf.from_dotlist(others))
    merged.ckpt = ""  # replaced below: text is set verbatim, outside OmegaConf
    return replace(OmegaConf.to_object(merged), **texts)


def check_args(args: SampleArgs) -> None:
    """What can be checked without the checkpoint, so a bad setting fails before it is read."""
    check_device(args.device)
    if args.dtype not in DTYPES:
        raise SettingError(f"dtype={args.dtype!r}: must be one of {', '.join(DTYPES)}")
    if args.num_samples < 1:
        raise SettingError(f"num_samples={args.num_samples}: must be >= 1")
    if args.batch_size < 1:
        raise SettingError(f"batch_size={args.batch_size}: must be >= 1")
    check_output_size(min(args.num_samples, args.batch_size), len(args.prompt), args.max_new_tokens)


def generate_samples(args: SampleArgs) -> Iterator[list[str]]:
    """The samples, one batch of at most `args.batch_size` at a time."""
    check_args(args)
    model, tokenizer = load_checkpoint(args.ckpt, map_location=args.device)
    batches = generate_batches(
        model,
        tokenizer,
        args.prompt,
        args.max_new_tokens,
        num_samples=args.num_samples,
        batch_size=args.batch_size,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        stop=args.stop,
        seed=args.seed,
        window=args.window,
    )
    dtype = DTYPES[args.dtype]
    device_type = next(model.parameters()).device.type
    while True:  # autocast around each batch only, not while the caller prints it
        with torch.autocast(device_type, dtype=dtype, enabled=dtype is not None):
            texts = next(batches, None)
        if texts is None:
            return
        yield texts


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    printed = 0
    try:
        for texts in generate_samples(parse_args(argv)):
            for text in texts:
                sys.stdout.write(("\n---\n" if printed else "") + text)
                printed += 1
            sys.stdout.flush()
    except (ChargptError, OmegaConfBaseException) as error:
        message = one_line(error)
        key = getattr(error, "full_key", None)  # OmegaConf names the key on a later line
        if key and key not in message:
            message = f"{key}: {message}"
        if printed:
            print(flush=True)
        print(f"chargpt.sample: error: {message}", file=sys.stderr)
        return 2
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
