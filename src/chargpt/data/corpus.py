"""Named corpora: where they come from, how they are checked, and reading any text file."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from chargpt.errors import ChargptError

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


def read_text(path: str | os.PathLike, encoding_errors: str = "strict") -> str:
    """Read a UTF-8 corpus, with errors that say what is wrong with the file.

    `encoding_errors="replace"` turns bytes that are not UTF-8 into U+FFFD instead of failing.
    """
    if encoding_errors not in ENCODING_ERRORS:
        raise CorpusError(
            f"data.encoding_errors={encoding_errors!r}: must be one of {', '.join(ENCODING_ERRORS)}"
        )
    path = Path(path)
    if not path.exists():
        raise CorpusError(f"text file not found: {path}; check data.path")
    if not path.is_file():
        raise CorpusError(f"{path} is not a file: data.path must name a UTF-8 text file")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8", errors=encoding_errors)
    except UnicodeDecodeError as error:
        raise CorpusError(
            f"{path} is not UTF-8: invalid byte 0x{raw[error.start]:02x} at offset {error.start}; "
            "convert the file to UTF-8, or set data.encoding_errors=replace to read such bytes as �"
        ) from None
    if not text:
        raise CorpusError(f"{path} is empty: a corpus needs text to train on")
    return text
