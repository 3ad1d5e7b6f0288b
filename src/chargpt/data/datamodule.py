"""`CharDataModule`: a text corpus as random training windows and fixed evaluation windows."""

from __future__ import annotations

import hashlib
import itertools
import math
import numbers
from collections.abc import Iterator, Sequence

import lightning as L
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, IterableDataset

from chargpt.data.corpus import (
    CorpusError,
    check_encoding_errors,
    encode_file,
    ensure_corpus,
    get_corpus,
)
from chargpt.data.tokenizer import CharTokenizer
from chargpt.errors import SettingError


class RandomWindows(IterableDataset):
    """An endless stream of batches of random windows: x = t[i:i+T], y = t[i+1:i+T+1].

    Batch number n is drawn from a generator seeded by (seed, rank, n) alone, so a resumed run
    continues the exact stream of an uninterrupted one by starting at `start_batch`, and each
    distributed rank draws its own stream. Whole batches are cut with one gather.
    """

    def __init__(
        self,
        tokens: Tensor,
        block_size: int,
        batch_size: int,
        seed: int,
        start_batch: int = 0,
        rank: int = 0,
    ) -> None:
        self.tokens = tokens
        self.block_size = block_size
        self.batch_size = batch_size
        self.seed = seed
        self.start_batch = start_batch
        self.rank = rank
        self.offsets = torch.arange(block_size + 1)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        worker, num_workers = _worker_slot()
        for index in itertools.count(self.start_batch + worker, num_workers):
            yield self.batch(index)

    def batch(self, index: int) -> tuple[Tensor, Tensor]:
        generator = torch.Generator().manual_seed(_batch_seed(self.seed, self.rank, index))
        last_start = len(self.tokens) - self.block_size - 1
        starts = torch.randint(last_start + 1, (self.batch_size,), generator=generator)
        windows = self.tokens[starts.unsqueeze(1) + self.offsets].long()  # (B, T+1)
        return windows[:, :-1], windows[:, 1:]


def _batch_seed(seed: int, rank: int, index: int) -> int:
    digest = hashlib.blake2b(f"{seed}/{rank}/{index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1  # manual_seed takes a non-negative int64


class FixedWindows(Dataset):
    """Consecutive non-overlapping windows from the start of a split: the same in every run.

    Window i is x = t[iT:iT+T], y = t[iT+1:iT+T+1], cut from the compact split when asked for,
    so only the batch in hand is widened to int64 (8 bytes per character).
    """

    def __init__(self, tokens: Tensor, block_size: int) -> None:
        self.tokens = tokens
        self.block_size = block_size

    def __len__(self) -> int:
        return (len(self.tokens) - 1) // self.block_size

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        # range() does the bounds check (and negative indices): a plain loop stops at IndexError.
        start = range(0, len(self) * self.block_size, self.block_size)[index]
        window = self.tokens[start : start + self.block_size + 1].long()
        return window[:-1], window[1:]


def _is_integer(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_splits(splits: object) -> None:
    """data.splits: three positive, finite fractions (train, val, test) that sum to 1."""
    is_list = isinstance(splits, Sequence) and not isinstance(splits, str | bytes)
    if not is_list or len(splits) != 3 or not all(_is_number(s) for s in splits):
        problem = "not a list of three numbers"
    elif not all(0 < s < math.inf for s in splits):  # NaN fails both comparisons
        problem = "each fraction must be positive and finite"
    elif abs(sum(splits) - 1.0) > 1e-6:
        problem = f"they sum to {sum(splits):g}"
    else:
        return
    shown = list(splits) if is_list else repr(splits)
    raise SettingError(
        f"data.splits={shown}: {problem}; give three positive fractions (train, val, test) "
        "that sum to 1, e.g. [0.9, 0.05, 0.05]"
    )


def _worker_slot() -> tuple[int, int]:
    """(this worker, number of workers): workers take turns, so the loader keeps batch order."""
    info = torch.utils.data.get_worker_info()
    return (0, 1) if info is None else (info.id, info.num_workers)


class CharDataModule(L.LightningDataModule):
    """A named corpus or any UTF-8 file (`path`), split by position into train/val/test."""

    def __init__(
        self,
        corpus: str | None = "shakespeare",
        path: str | None = None,
        data_dir: str = "data",
        block_size: int = 64,
        batch_size: int = 32,
        eval_batch_size: int = 128,
        splits: Sequence[float] = (0.9, 0.05, 0.05),
        seed: int = 1337,
        num_workers: int = 0,
        pin_memory: bool = False,
        encoding_errors: str = "strict",
    ) -> None:
        super().__init__()
        if (corpus is None) == (path is None):
            raise CorpusError(
                "set exactly one of data.corpus (a named corpus) and data.path (a text file)"
            )
        if corpus is not None:
            get_corpus(corpus)  # an unknown name fails now, not after the model is built
        for key, value in (
            ("block_size", block_size),
            ("batch_size", batch_size),
            ("eval_batch_size", eval_batch_size),
        ):
            if not _is_integer(value) or value <= 0:
                raise SettingError(f"data.{key}={value!r}: must be a positive integer")
        if not _is_integer(num_workers) or num_workers < 0:
            raise SettingError(
                f"data.num_workers={num_workers!r}: must be an integer >= 0 "
                "(0 loads batches in the training process)"
            )
        _check_splits(splits)
        check_encoding_errors(encoding_errors)
        self.corpus = corpus
        self.path = path
        self.data_dir = data_dir
        self.block_size = block_size
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.splits = tuple(splits)
        self.seed = seed
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.encoding_errors = encoding_errors
        self.tokenizer: CharTokenizer | None = None
        self.train_tokens = self.val_tokens = self.test_tokens = None

    def prepare_data(self) -> None:
        if self.corpus is not None:
            ensure_corpus(get_corpus(self.corpus), self.data_dir)

    def setup(self, stage: str | None = None) -> None:
        if self.tokenizer is not None:
            return  # run.py sets up early to read vocab_size; the Trainer calls again
        # A named corpus is fetched and verified here too when prepare_data() was not called.
        path = self.path or ensure_corpus(get_corpus(self.corpus), self.data_dir)
        tokenizer, tokens = encode_file(path, self.encoding_errors)
        if tokenizer.vocab_size < 2:
            raise CorpusError(
                f"{path} holds a single distinct character: there is nothing to learn"
            )
        n_train = int(self.splits[0] * len(tokens))
        n_val = int(self.splits[1] * len(tokens))
        parts = tokens[:n_train], tokens[n_train : n_train + n_val], tokens[n_train + n_val :]
        for name, part in zip(("train", "val", "test"), parts, strict=True):
            if len(part) < self.block_size + 1:
                raise CorpusError(
                    f"the {name} split has {len(part)} characters, fewer than "
                    f"block_size + 1 = {self.block_size + 1}: lower model.block_size "
                    "or use a longer text"
                )
        self.train_tokens, self.val_tokens, self.test_tokens = parts
        self.tokenizer = tokenizer

    @property
    def vocab_size(self) -> int:
        if self.tokenizer is None:
            raise RuntimeError("call setup() before reading vocab_size")
        return self.tokenizer.vocab_size

    def train_dataloader(self) -> DataLoader:
        start_batch, rank = 0, 0
        if self.trainer is not None:
            # Lightning restores the step counter before it asks for data: a resumed run
            # continues the batch stream where its checkpoint left it.
            start_batch = self.trainer.global_step * self.trainer.accumulate_grad_batches
            rank = self.trainer.global_rank
        windows = RandomWindows(
            self.train_tokens, self.block_size, self.batch_size, self.seed, start_batch, rank
        )
        return self._loader(windows, batch_size=None)

    def val_dataloader(self) -> DataLoader:
        return self._loader(FixedWindows(self.val_tokens, self.block_size), self.eval_batch_size)

    def test_dataloader(self) -> DataLoader:
        return self._loader(FixedWindows(self.test_tokens, self.block_size), self.eval_batch_size)

    def _loader(self, dataset, batch_size: int | None) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=False,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
            # Each new iterator draws a base seed; from a private generator, not torch's global
            # one, so validation does not shift dropout's random stream (and a resume matches).
            generator=torch.Generator().manual_seed(self.seed),
        )
