"""Character-level tokenizer: one token per distinct character of the corpus."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import cached_property

import torch

from chargpt.errors import SettingError


class UnknownCharacterError(SettingError):
    """Text holds characters that are not in the vocabulary."""


def code_points(text: str) -> torch.Tensor:
    """The code points of `text` as a 1-D int32 tensor, without a Python object per character."""
    if not text:
        return torch.empty(0, dtype=torch.int32)
    # A bytearray, because torch.frombuffer warns on read-only bytes; surrogatepass keeps a lone
    # surrogate (possible in a vocabulary loaded from a checkpoint) as its own code point.
    raw = bytearray(text.encode("utf-32-le", errors="surrogatepass"))
    return torch.frombuffer(raw, dtype=torch.int32)


class CharTokenizer:
    def __init__(self, chars: Sequence[str]) -> None:
        chars = list(chars)
        if not chars:
            raise SettingError("a tokenizer needs at least one character")
        if any(len(c) != 1 for c in chars) or len(set(chars)) != len(chars):
            raise SettingError("the vocabulary must be distinct single characters")
        self.chars = chars
        self._index = {c: i for i, c in enumerate(chars)}

    @classmethod
    def from_text(cls, text: str) -> CharTokenizer:
        """Vocabulary = the sorted distinct characters of `text`."""
        return cls(sorted(set(text)))

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    @property
    def dtype(self) -> torch.dtype:
        """The compact dtype of encoded text: uint8 when the vocabulary fits in a byte."""
        return torch.uint8 if self.vocab_size <= 256 else torch.int32

    def encode(self, text: str) -> list[int]:
        try:
            return [self._index[c] for c in text]
        except KeyError:
            raise self._unknown(text) from None

    def unknown_characters(self, text: str) -> list[str]:
        return sorted(set(text) - self._index.keys())

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self.chars[i] for i in ids)

    def encode_tensor(self, text: str) -> torch.Tensor:
        """The whole text as a compact 1-D tensor (`dtype`), looked up by code point in a table."""
        points = code_points(text)
        if len(points) and int(points.max()) >= len(self._table):
            raise self._unknown(text)
        ids = self._table[points]
        if len(ids) and int(ids.min()) < 0:
            raise self._unknown(text)
        return ids.to(self.dtype)

    @cached_property
    def _table(self) -> torch.Tensor:
        """Code point -> token id, -1 for characters outside the vocabulary (at most 4.4 MB)."""
        points = torch.tensor([ord(c) for c in self.chars])
        table = torch.full((int(points.max()) + 1,), -1, dtype=torch.int32)
        table[points] = torch.arange(self.vocab_size, dtype=torch.int32)
        return table

    def _unknown(self, text: str) -> UnknownCharacterError:
        return UnknownCharacterError(
            f"characters not in the vocabulary: {_describe(self.unknown_characters(text))}; "
            "the model knows only the characters of its training text"
        )

    def to_dict(self) -> dict[str, list[str]]:
        """Plain, JSON-able data: what a checkpoint stores."""
        return {"chars": list(self.chars)}

    @classmethod
    def from_dict(cls, data: dict[str, list[str]]) -> CharTokenizer:
        return cls(data["chars"])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CharTokenizer) and self.chars == other.chars

    def __repr__(self) -> str:
        return f"CharTokenizer(vocab_size={self.vocab_size})"


def _describe(chars: list[str]) -> str:
    return ", ".join(repr(c) for c in chars)
