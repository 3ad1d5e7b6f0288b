"""Character-level tokenizer: one token per distinct character of the corpus."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch


class UnknownCharacterError(ValueError):
    """Text holds characters that are not in the vocabulary."""


class CharTokenizer:
    def __init__(self, chars: Sequence[str]) -> None:
        chars = list(chars)
        if not chars:
            raise ValueError("a tokenizer needs at least one character")
        if any(len(c) != 1 for c in chars) or len(set(chars)) != len(chars):
            raise ValueError("the vocabulary must be distinct single characters")
        self.chars = chars
        self._index = {c: i for i, c in enumerate(chars)}

    @classmethod
    def from_text(cls, text: str) -> CharTokenizer:
        """Vocabulary = the sorted distinct characters of `text`."""
        return cls(sorted(set(text)))

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> list[int]:
        try:
            return [self._index[c] for c in text]
        except KeyError:
            raise UnknownCharacterError(
                f"characters not in the vocabulary: {_describe(self.unknown_characters(text))}; "
                "the model knows only the characters of its training text"
            ) from None

    def unknown_characters(self, text: str) -> list[str]:
        return sorted(set(text) - self._index.keys())

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self.chars[i] for i in ids)

    def encode_tensor(self, text: str) -> torch.Tensor:
        """The whole text as a compact 1-D tensor: uint8 when the vocabulary fits in a byte."""
        dtype = torch.uint8 if self.vocab_size <= 256 else torch.int32
        return torch.tensor(self.encode(text), dtype=dtype)

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
