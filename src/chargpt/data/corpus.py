"""Named corpora: where they come from, how they are checked, and reading any text file."""

from __future__ import annotations

import codecs
import hashlib
import os
import shutil
import sys
import tempfile
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import torch
from torch import Tensor

from chargpt.data.tokenizer import CharTokenizer, UnknownCharacterError, code_points
from chargpt.errors import ChargptError, SettingError

Fetch = Callable[[str], BinaryIO]


class CorpusError(ChargptError, RuntimeError):
    """A corpus cannot be found, downloaded, verified or read; the message says what to do."""


@dataclass(frozen=True)
class Corpus:
    name: str
    filename: str
    url: str
    sha256: str


CORPORA: dict[str, Corpus] = {
    "shakespeare": Corpus(
        name="shakespeare",
        filename="tinyshakespeare.txt",
        url="https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
        sha256="86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
    ),
    "names": Corpus(
        name="names",
        filename="names.txt",
        url="https://raw.githubusercontent.com/karpathy/makemore/master/names.txt",
        sha256="0a30b5557f192f32ab962680889aac5f6fda0f4cecf40a6d0b5694f58ea8cc4d",
    ),
}


def get_corpus(name: str) -> Corpus:
    if name not in CORPORA:
        raise CorpusError(
            f"unknown corpus {name!r}: choose one of {', '.join(CORPORA)}, "
            "or data=text data.path=FILE for your own text"
        )
    return CORPORA[name]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _urlopen(url: str) -> BinaryIO:
    return urllib.request.urlopen(url, timeout=30)


def ensure_corpus(corpus: Corpus, data_dir: str | os.PathLike, fetch: Fetch = _urlopen) -> Path:
    """Return the corpus file in data_dir, downloading and verifying it first if it is missing."""
    path = Path(data_dir) / corpus.filename
    if path.is_file():
        actual = sha256_of(path)
        if actual != corpus.sha256:
            raise CorpusError(
                f"{path} does not match the published {corpus.name} corpus (sha256 {actual}, "
                f"expected {corpus.sha256}): delete it to download it again"
            )
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        downloaded = _download(corpus.url, path.parent, fetch)
    except OSError as error:
        raise CorpusError(
            f"could not download the {corpus.name} corpus from {corpus.url} ({error}); "
            f"offline, copy {corpus.filename} into {path.parent.resolve()} "
            "or point CHARGPT_DATA_DIR (or paths.data_dir=DIR) at a directory that holds it"
        ) from None
    actual = sha256_of(downloaded)
    if actual != corpus.sha256:
        downloaded.unlink()
        raise CorpusError(
            f"the download of {corpus.url} has sha256 {actual}, expected {corpus.sha256}: "
            "it was discarded; try again, or copy a verified file into the data directory"
        )
    # Rename only once verified, so an interrupted or corrupt download never looks complete.
    downloaded.replace(path)
    return path


def _download(url: str, directory: Path, fetch: Fetch) -> Path:
    with tempfile.NamedTemporaryFile(dir=directory, suffix=".part", delete=False) as out:
        try:
            with fetch(url) as response:
                shutil.copyfileobj(response, out)
        except BaseException:
            Path(out.name).unlink(missing_ok=True)
            raise
    return Path(out.name)


ENCODING_ERRORS = ("strict", "replace")
# A corpus is read this many bytes at a time. Each chunk's temporaries (about 16 bytes per
# character) stay small enough for malloc to reuse them; 1 MiB chunks were mapped and faulted in
# afresh each time, 10x the page faults of the token tensor itself.
CHUNK_BYTES = 1 << 17


def check_encoding_errors(encoding_errors: str) -> None:
    if encoding_errors not in ENCODING_ERRORS:
        raise CorpusError(
            f"data.encoding_errors={encoding_errors!r}: must be one of {', '.join(ENCODING_ERRORS)}"
        )


def iter_text(
    path: str | os.PathLike, encoding_errors: str = "strict", chunk_bytes: int = CHUNK_BYTES
) -> Iterator[str]:
    """The text of a UTF-8 corpus, decoded `chunk_bytes` at a time, with `read_text`'s errors.

    A character whose bytes straddle two chunks is decoded whole, and an invalid byte is reported
    at its offset in the file, so the chunks join to exactly what one decode of the file gives.
    """
    check_encoding_errors(encoding_errors)
    if chunk_bytes < 1:
        raise SettingError(f"chunk_bytes={chunk_bytes}: must be a positive number of bytes")
    path = Path(path)
    if not path.exists():
        raise CorpusError(f"text file not found: {path}; check data.path")
    if not path.is_file():
        raise CorpusError(f"{path} is not a file: data.path must name a UTF-8 text file")
    decoder = codecs.getincrementaldecoder("utf-8")(errors=encoding_errors)
    offset = 0  # bytes read so far
    with open(path, "rb") as f:
        while True:
            raw = f.read(chunk_bytes)
            # The last call (raw = b"") fails, or gives U+FFFD, if the file ends inside a sequence.
            if text := _decode(decoder, raw, offset, path, final=not raw):
                yield text
            if not raw:
                break
            offset += len(raw)
    if offset == 0:
        raise CorpusError(f"{path} is empty: a corpus needs text to train on")


def _decode(
    decoder: codecs.IncrementalDecoder, raw: bytes, offset: int, path: Path, final: bool
) -> str:
    # The decoder keeps back the bytes of an unfinished sequence and decodes them in front of the
    # next chunk: an error's start counts from the first of those kept bytes.
    held = len(decoder.getstate()[0])
    try:
        text = decoder.decode(raw, final)
    except UnicodeDecodeError as error:
        raise CorpusError(
            f"{path} is not UTF-8: invalid byte 0x{error.object[error.start]:02x} "
            f"at offset {offset - held + error.start}; convert the file to UTF-8, "
            "or set data.encoding_errors=replace to read such bytes as �"
        ) from None
    return text


def read_text(path: str | os.PathLike, encoding_errors: str = "strict") -> str:
    """Read a UTF-8 corpus, with errors that say what is wrong with the file.

    `encoding_errors="replace"` turns bytes that are not UTF-8 into U+FFFD instead of failing.
    The whole text is held as one str: `encode_file` encodes a big corpus in bounded memory.
    """
    return "".join(iter_text(path, encoding_errors))


def encode_file(
    path: str | os.PathLike, encoding_errors: str = "strict", chunk_bytes: int = CHUNK_BYTES
) -> tuple[CharTokenizer, Tensor]:
    """The tokenizer of a UTF-8 corpus and its whole text as tokens (`CharTokenizer.dtype`).

    Memory: the token tensor plus a few chunks. The file is read twice: once for its distinct
    characters and length, once to fill the tensor, allocated once.
    """
    seen = torch.zeros(sys.maxunicode + 1, dtype=torch.bool)
    length = 0
    for text in iter_text(path, encoding_errors, chunk_bytes):
        present = torch.bincount(code_points(text)) > 0  # faster than marking seen[points]
        seen[: len(present)] |= present
        length += len(text)
    # Ascending code points: the order of sorted(set(text)), as CharTokenizer.from_text.
    tokenizer = CharTokenizer([chr(c) for c in seen.nonzero().flatten().tolist()])
    tokens = torch.empty(length, dtype=tokenizer.dtype)
    start = 0
    for text in iter_text(path, encoding_errors, chunk_bytes):
        end = start + len(text)
        if end > length:
            raise _changed(path)
        try:
            tokens[start:end] = tokenizer.encode_tensor(text)
        except UnknownCharacterError:
            raise _changed(path) from None
        start = end
    if start != length:
        raise _changed(path)
    return tokenizer, tokens


def _changed(path: str | os.PathLike) -> CorpusError:
    return CorpusError(
        f"{path} changed while it was read: train on it when nothing else is writing to it"
    )
