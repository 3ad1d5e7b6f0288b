"""Text in, text out: sampling from a model with its tokenizer (plain PyTorch)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from typing import Protocol

import torch

from chargpt.errors import SettingError
from chargpt.model import GPT


class Tokenizer(Protocol):
    """What text generation needs of a tokenizer (`chargpt.data.CharTokenizer` is one)."""

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: Sequence[int]) -> str: ...


# The output of one call to GPT.generate is a (rows, prompt + max_new_tokens) int64 tensor that
# grows one column a step (twice its size while torch.cat copies it): 2**24 tokens is 128 MiB.
MAX_BATCH_TOKENS = 2**24


def check_output_size(rows: int, prompt_length: int, max_new_tokens: int) -> None:
    """Refuse a batch of `rows` samples whose output would exceed MAX_BATCH_TOKENS tokens."""
    length = prompt_length + max(max_new_tokens, 0)
    if rows * length > MAX_BATCH_TOKENS:
        raise SettingError(
            f"max_new_tokens={max_new_tokens}: {rows} samples of {length} tokens at once exceed "
            f"the {MAX_BATCH_TOKENS} tokens one batch may hold; lower max_new_tokens or the "
            "samples per batch (batch_size)"
        )


def batch_seed(seed: int, index: int) -> int:
    """The seed of batch `index`: `seed` itself for the first, then one derived from both."""
    if index == 0:
        return seed
    digest = hashlib.sha256(f"chargpt.generate:{seed}:{index}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1  # within torch.manual_seed's range


def generate_text(
    model: GPT,
    tokenizer: Tokenizer,
    prompt: str,
    max_new_tokens: int,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    stop: str | None = None,
    seed: int = 0,
    num_samples: int = 1,
    window: str = "slide",
) -> list[str]:
    """`num_samples` continuations of `prompt`, each ending at its first `stop` character if set.

    The model must be in eval mode; the same seed gives the same texts. `window` is what the
    model keeps of a sequence longer than its block_size (see `GPT.generate`).
    """
    if not prompt:
        raise SettingError(
            "prompt is empty: give at least one character (the default is a newline)"
        )
    if stop is not None and len(stop) != 1:
        raise SettingError(f"stop={stop!r}: must be a single character")
    if num_samples < 1:
        raise SettingError(f"num_samples={num_samples}: must be >= 1")
    check_output_size(num_samples, len(prompt), max_new_tokens)
    device = next(model.parameters()).device
    idx = torch.tensor([tokenizer.encode(prompt)] * num_samples, device=device)
    stop_token = None if stop is None else tokenizer.encode(stop)[0]
    out = model.generate(
        idx,
        max_new_tokens,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        stop_token=stop_token,
        generator=torch.Generator(device=device).manual_seed(seed),
        window=window,
    )
    texts = [tokenizer.decode(row.tolist()) for row in out]
    if stop is None:
        return texts
    # Rows that stopped before the others are padded with the stop character: cut after the first.
    return [text[: text.find(stop, len(prompt)) + 1] or text for text in texts]


def generate_batches(
    model: GPT,
    tokenizer: Tokenizer,
    prompt: str,
    max_new_tokens: int,
    *,
    num_samples: int,
    batch_size: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    stop: str | None = None,
    seed: int = 0,
    window: str = "slide",
) -> Iterator[list[str]]:
    """`generate_text`'s samples, at most `batch_size` at a time, each batch once it is done.

    Batch i uses the seed `batch_seed(seed, i)`: up to batch_size samples are exactly those of
    `generate_text(..., seed=seed)`, and more keep them and add others.
    """
    if num_samples < 1:
        raise SettingError(f"num_samples={num_samples}: must be >= 1")
    if batch_size < 1:
        raise SettingError(f"batch_size={batch_size}: must be >= 1")
    for index, start in enumerate(range(0, num_samples, batch_size)):
        yield generate_text(
            model,
            tokenizer,
            prompt,
            max_new_tokens,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            stop=stop,
            seed=batch_seed(seed, index),
            num_samples=min(batch_size, num_samples - start),
            window=window,
        )
