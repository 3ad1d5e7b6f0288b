import hashlib
import io
from pathlib import Path

import pytest

from chargpt.data import Corpus, CorpusError, ensure_corpus, read_text

BODY = b"To be, or not to be, that is the question.\n"
GOOD = Corpus(
    "hamlet", "hamlet.txt", "https://example.invalid/hamlet.txt", hashlib.sha256(BODY).hexdigest()
)


def serve(body: bytes):
    calls = []

    def fetch(url: str):
        calls.append(url)
        return io.BytesIO(body)

    fetch.calls = calls
    return fetch


def test_download_is_verified_and_saved(tmp_path):
    fetch = serve(BODY)
    path = ensure_corpus(GOOD, tmp_path, fetch=fetch)
    assert path == tmp_path / "hamlet.txt" and path.read_bytes() == BODY
    assert fetch.calls == [GOOD.url]
    ensure_corpus(GOOD, tmp_path, fetch=fetch)  # present and valid: no second download
    assert len(fetch.calls) == 1


def test_download_from_a_file_url(tmp_path):
    source = tmp_path / "mirror" / "hamlet.txt"
    source.parent.mkdir()
    source.write_bytes(BODY)
    corpus = Corpus("hamlet", "hamlet.txt", source.as_uri(), GOOD.sha256)
    assert ensure_corpus(corpus, tmp_path / "data").read_bytes() == BODY


def test_checksum_mismatch_is_rejected_and_nothing_is_left(tmp_path):
    with pytest.raises(CorpusError, match=r"sha256 .* expected .*: it was discarded"):
        ensure_corpus(GOOD, tmp_path, fetch=serve(b"tampered"))
    assert list(tmp_path.iterdir()) == []


def test_existing_file_with_wrong_checksum_is_reported(tmp_path):
    (tmp_path / "hamlet.txt").write_bytes(b"edited")
    with pytest.raises(CorpusError, match="does not match the published hamlet corpus"):
        ensure_corpus(GOOD, tmp_path, fetch=serve(BODY))


def test_offline_error_says_where_to_put_the_file(tmp_path):
    def offline(url):
        raise OSError("network is unreachable")

    with pytest.raises(CorpusError, match=r"copy hamlet.txt into .* or point CHARGPT_DATA_DIR"):
        ensure_corpus(GOOD, tmp_path, fetch=offline)
    assert list(tmp_path.iterdir()) == []


def test_shared_copies_match_the_registered_checksums():
    shared = Path(__file__).resolve().parents[3] / "shared" / "data"
    if not shared.is_dir():
        pytest.skip("no shared/data beside the checkout")
    from chargpt.data import CORPORA

    for corpus in CORPORA.values():
        assert ensure_corpus(corpus, shared, fetch=serve(b"")).name == corpus.filename


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "text file not found"),
        (b"", "is empty"),
        (b"abc\xffdef", "not UTF-8: invalid byte 0xff at offset 3"),
    ],
)
def test_read_text_errors(tmp_path, content, message):
    path = tmp_path / "corpus.txt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(CorpusError, match=message):
        read_text(path)


def test_read_text_rejects_a_directory(tmp_path):
    with pytest.raises(CorpusError, match="is not a file"):
        read_text(tmp_path)
