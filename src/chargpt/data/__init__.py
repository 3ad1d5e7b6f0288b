"""Text corpora and the character tokenizer (the DataModule adapts them to Lightning)."""

from chargpt.data.corpus import CORPORA, Corpus, CorpusError, ensure_corpus, read_text
from chargpt.data.tokenizer import CharTokenizer, UnknownCharacterError

__all__ = [
    "CORPORA",
    "CharTokenizer",
    "Corpus",
    "CorpusError",
    "UnknownCharacterError",
    "ensure_corpus",
    "read_text",
]
