"""Sampling, plain PyTorch: the settings (`SamplingConfig`), choosing each next token from logits
(temperature, top-k, nucleus), and text in, text out with a tokenizer (`generate_text`).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Protocol

import torch
from torch import Tensor

from chargpt.errors import SettingError

if TYPE_CHECKING:  # gpt.py imports this module; the model is only a type here
    from chargpt.model.gpt import GPT

# What generation keeps once the sequence outgrows block_size (see GPT.generate).
WINDOWS = ("slide", "halve")

# The output of one call to GPT.generate is a (rows, prompt + max_new_tokens) int64 tensor that
# grows one column a step (twice its size while torch.cat copies it): 2**24 tokens is 128 MiB.
MAX_BATCH_TOKENS = 2**24

# What torch.Generator.manual_seed accepts.
SEED_RANGE = range(-(2**63), 2**64)


class Tokenizer(Protocol):
    """What text generation needs of a tokenizer (`chargpt.data.CharTokenizer` is one)."""

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: Sequence[int]) -> str: ...

    def unknown_characters(self, text: str) -> list[str]: ...


@dataclass(frozen=True)
class SamplingConfig:
    """How to sample, for `GPT.generate`, `generate_text`, the sample command and the samples
    printed during training. Checked when created; `check_vocabulary` and `check_output_size`
    add the checks that need the model's vocabulary or the batch.
    """

    prompt: str = "\n"
    max_new_tokens: int = 200
    temperature: float = 0.8  # 0 decodes greedily
    top_k: int | None = None  # keep the k likeliest tokens
    top_p: float | None = None  # keep the smallest set of tokens whose probability reaches p
    seed: int = 0
    stop: str | None = None  # a character that ends each sample, kept in it
    num_samples: int = 1
    window: str = "slide"  # what the model keeps past block_size: one of WINDOWS

    def __post_init__(self) -> None:
        if not isinstance(self.prompt, str):
            raise SettingError(f"prompt={self.prompt!r}: must be text")
        if not self.prompt:
            raise SettingError(
                "prompt is empty: give at least one character (the default is a newline)"
            )
        _check_integer("max_new_tokens", self.max_new_tokens, minimum=0)
        _check_number("temperature", self.temperature)
        if self.temperature < 0:
            raise SettingError(
                f"temperature={self.temperature!r}: must be >= 0 (0 means greedy decoding)"
            )
        if self.top_k is not None:
            _check_integer("top_k", self.top_k, what="an integer, or null (no limit)")
            if self.top_k < 1:
                raise SettingError(
                    f"top_k={self.top_k!r}: must be between 1 and the vocabulary size, "
                    "or null (no limit)"
                )
        if self.top_p is not None:
            _check_number("top_p", self.top_p, what="a number, or null (no nucleus)")
            if not 0.0 < self.top_p <= 1.0:
                raise SettingError(f"top_p={self.top_p!r}: must be in (0, 1], or null (no nucleus)")
        _check_integer("seed", self.seed)
        if self.seed not in SEED_RANGE:
            raise SettingError(
                f"seed={self.seed!r}: must be a whole number from {SEED_RANGE.start} to "
                f"{SEED_RANGE.stop - 1}"
            )
        if self.stop is not None and (not isinstance(self.stop, str) or len(self.stop) != 1):
            raise SettingError(f"stop={self.stop!r}: must be a single character, or null")
        _check_integer("num_samples", self.num_samples, minimum=1)
        if self.window not in WINDOWS:
            raise SettingError(f"window={self.window!r}: must be one of {', '.join(WINDOWS)}")

    def check_vocabulary(self, vocab_size: int, tokenizer: Tokenizer | None = None) -> None:
        """What needs the model: top_k within its vocabulary and, given its tokenizer, a prompt
        and a stop character that it knows."""
        if self.top_k is not None and self.top_k > vocab_size:
            raise SettingError(
                f"top_k={self.top_k}: must be between 1 and the vocabulary size {vocab_size}"
            )
        if tokenizer is None:
            return
        unknown = tokenizer.unknown_characters(self.prompt)
        if unknown:
            raise SettingError(
                f"prompt={self.prompt!r} has characters the corpus lacks: "
                f"{', '.join(map(repr, unknown))}; choose a prompt from the corpus's characters"
            )
        if self.stop is not None and tokenizer.unknown_characters(self.stop):
            raise SettingError(f"stop={self.stop!r}: must be one character of the corpus")

    def check_output_size(self, batch_size: int | None = None) -> None:
        """Refuse batches of samples whose output would exceed MAX_BATCH_TOKENS tokens.

        The samples are generated `batch_size` at a time, all at once when it is None.
        """
        if batch_size is not None:
            _check_integer("batch_size", batch_size, minimum=1)
        rows = self.num_samples if batch_size is None else min(self.num_samples, batch_size)
        length = len(self.prompt) + self.max_new_tokens
        if rows * length > MAX_BATCH_TOKENS:
            raise SettingError(
                f"max_new_tokens={self.max_new_tokens}: {rows} samples of {length} tokens at "
                f"once exceed the {MAX_BATCH_TOKENS} tokens one batch may hold; lower "
                "max_new_tokens or the samples per batch (batch_size)"
            )


SAMPLING_KEYS = tuple(field.name for field in fields(SamplingConfig))


def _check_integer(
    key: str, value: object, minimum: int | None = None, what: str = "an integer"
) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SettingError(f"{key}={value!r}: must be {what}")
    if minimum is not None and value < minimum:
        raise SettingError(f"{key}={value!r}: must be >= {minimum}")


def _check_number(key: str, value: object, what: str = "a finite number") -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise SettingError(f"{key}={value!r}: must be {what}")


def top_k_filter(logits: Tensor, k: int) -> Tensor:
    """Set every logit below the k-th largest of its row to -inf."""
    kth_largest = torch.topk(logits, k, dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth_largest, float("-inf"))


def top_p_filter(logits: Tensor, p: float) -> Tensor:
    """Keep the smallest set of tokens whose probabilities sum to at least p (the nucleus)."""
    sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
    cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
    # Drop a token when those ranked above it already reach p; the top token always stays.
    drop_sorted = (cumulative - sorted_logits.softmax(dim=-1)) >= p
    drop = drop_sorted.scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


def sample_next(
    logits: Tensor, sampling: SamplingConfig, generator: torch.Generator | None = None
) -> Tensor:
    """Pick one token per row of `logits` (B, V); returns (B, 1). temperature 0 is greedy."""
    if sampling.temperature == 0:
        return logits.argmax(dim=-1, keepdim=True)
    logits = logits / sampling.temperature
    if sampling.top_k is not None:
        logits = top_k_filter(logits, sampling.top_k)
    if sampling.top_p is not None and sampling.top_p < 1.0:
        logits = top_p_filter(logits, sampling.top_p)
    probs = logits.softmax(dim=-1)
    return torch.multinomial(probs, num_samples=1, generator=generator)


def batch_seed(seed: int, index: int) -> int:
    """The seed of batch `index`: `seed` itself for the first, then one derived from both."""
    if index == 0:
        return seed
    # The digest's text fixes every later batch's samples: changing it changes users' samples.
    digest = hashlib.sha256(f"chargpt.generate:{seed}:{index}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1  # within torch.manual_seed's range


def generate_text(model: GPT, tokenizer: Tokenizer, sampling: SamplingConfig) -> list[str]:
    """`sampling.num_samples` continuations of its prompt, each ending at its first `stop`
    character if set.

    The model must be in eval mode; the same seed gives the same texts.
    """
    sampling.check_vocabulary(model.config.vocab_size, tokenizer)
    sampling.check_output_size()
    device = next(model.parameters()).device
    idx = torch.tensor([tokenizer.encode(sampling.prompt)] * sampling.num_samples, device=device)
    stop = sampling.stop
    out = model.generate(
        idx,
        sampling,
        stop_token=None if stop is None else tokenizer.encode(stop)[0],
        generator=torch.Generator(device=device).manual_seed(sampling.seed),
    )
    texts = [tokenizer.decode(row.tolist()) for row in out]
    if stop is None:
        return texts
    # Rows that stopped before the others are padded with the stop character: cut after the first.
    return [text[: text.find(stop, len(sampling.prompt)) + 1] or text for text in texts]


def generate_batches(
    model: GPT, tokenizer: Tokenizer, sampling: SamplingConfig, batch_size: int
) -> Iterator[list[str]]:
    """`generate_text`'s samples, at most `batch_size` at a time, each batch once it is done.

    Batch i uses the seed `batch_seed(sampling.seed, i)`: up to batch_size samples are exactly
    those of `generate_text(model, tokenizer, sampling)`, and more keep them and add others.
    """
    sampling.check_output_size(batch_size)
    for index, start in enumerate(range(0, sampling.num_samples, batch_size)):
        batch = replace(
            sampling,
            seed=batch_seed(sampling.seed, index),
            num_samples=min(batch_size, sampling.num_samples - start),
        )
        yield generate_text(model, tokenizer, batch)
