import hashlib
import io
import random
from pathlib import Path

import pytest
import torch

import chargpt.data.corpus as corpus_module
from chargpt.data import CharTokenizer, Corpus, CorpusError, ensure_corpus, read_text
from chargpt.data.corpus import encode_file

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


def test_read_text_rejects_an_unknown_encoding_errors_setting(tmp_path):
    (tmp_path / "a.txt").write_text("ab")
    with pytest.raises(CorpusError, match=r"data\.encoding_errors='ignore': must be one of"):
        read_text(tmp_path / "a.txt", "ignore")


# Texts whose UTF-8 has 1- to 4-byte characters; tiny chunks split them at every position.
TEXTS = {
    "ascii": "To be, or not to be: that is the question.\n" * 3,
    "crlf": "FIRST CITIZEN:\r\nSpeak, speak.\r\n\r\nALL:\r\nResolved.\r\n",
    "emoji": "rain 🌧 then sun ☀️, smile 😀😀 end 🏁",
    "cjk": "吾輩は猫である。名前はまだ無い。\nどこで生れたか",
    "bom": "\ufeffnaïve café, façade — déjà vu",
    "wide vocabulary": "".join(chr(0x4E00 + i) for i in range(300)) + "abc",
}


@pytest.mark.parametrize("chunk_bytes", [1, 2, 3, 5, 7, 1 << 20])
@pytest.mark.parametrize("name", TEXTS)
def test_encode_file_equals_encoding_the_whole_text(tmp_path, name, chunk_bytes):
    text = TEXTS[name]
    path = tmp_path / "corpus.txt"
    path.write_bytes(text.encode("utf-8"))
    tokenizer, tokens = encode_file(path, chunk_bytes=chunk_bytes)
    expected = CharTokenizer.from_text(text)
    assert tokenizer == expected
    assert tokens.dtype == expected.dtype and tokens.shape == (len(text),)
    assert tokens.tolist() == expected.encode(text)
    assert torch.equal(tokens, expected.encode_tensor(text))
    assert read_text(path) == text  # CRLF and a BOM are kept as they are


def test_a_vocabulary_wider_than_a_byte_is_int32(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text(TEXTS["wide vocabulary"], encoding="utf-8")
    tokenizer, tokens = encode_file(path, chunk_bytes=5)
    assert tokenizer.vocab_size == 303 and tokens.dtype == torch.int32
    assert tokenizer.decode(tokens.tolist()) == TEXTS["wide vocabulary"]


def random_bytes(seed: int) -> bytes:
    """Valid UTF-8 of every length mixed with stray bytes, cut sequences and surrogates."""
    rng = random.Random(seed)
    pieces = ["a", "\n", "é", "€", "😀", "吾"]
    junk = [b"\xff", b"\x80", b"\xc3", b"\xe2\x82", b"\xf0\x9f\x98", b"\xed\xa0\x80", b"\xc0\xaf"]
    return b"".join(
        rng.choice(junk) if rng.random() < 0.1 else rng.choice(pieces).encode("utf-8")
        for _ in range(rng.randint(1, 40))
    )


@pytest.mark.parametrize("chunk_bytes", [1, 2, 3, 4, 7])
def test_streamed_decoding_reports_and_replaces_as_one_decode(tmp_path, chunk_bytes):
    path = tmp_path / "corpus.txt"
    for seed in range(150):
        raw = random_bytes(seed)
        path.write_bytes(raw)
        replaced = raw.decode("utf-8", errors="replace")
        tokenizer, tokens = encode_file(path, "replace", chunk_bytes=chunk_bytes)
        assert tokenizer.decode(tokens.tolist()) == replaced, raw
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as error:
            message = f"invalid byte 0x{raw[error.start]:02x} at offset {error.start};"
            with pytest.raises(CorpusError, match=message):
                encode_file(path, chunk_bytes=chunk_bytes)
        else:
            strict_tokenizer, strict_tokens = encode_file(path, chunk_bytes=chunk_bytes)
            assert strict_tokenizer.decode(strict_tokens.tolist()) == replaced


@pytest.mark.parametrize(
    ("content", "offset"),
    [
        (b"abcdefghij\xffk", 10),  # in a later chunk
        ("abcdefgé".encode() + b"\xe2\x82x", 9),  # a cut sequence, begun in an earlier chunk
        (b"abcdefghi\xe2\x82", 9),  # the file ends inside a sequence
    ],
)
def test_invalid_byte_offset_counts_from_the_start_of_the_file(tmp_path, content, offset):
    path = tmp_path / "corpus.txt"
    path.write_bytes(content)
    with pytest.raises(CorpusError, match=f"not UTF-8: invalid byte 0x.. at offset {offset};"):
        encode_file(path, chunk_bytes=4)


def test_replace_reads_bad_bytes_as_the_replacement_character(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_bytes(b"abcdefghij\xffk\xe2\x82")
    tokenizer, tokens = encode_file(path, "replace", chunk_bytes=4)
    assert tokenizer.decode(tokens.tolist()) == "abcdefghij\ufffdk\ufffd"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "text file not found"),
        (b"", "is empty"),
        (b"abc\xffdef", "not UTF-8: invalid byte 0xff at offset 3"),
    ],
)
def test_encode_file_errors(tmp_path, content, message):
    path = tmp_path / "corpus.txt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(CorpusError, match=message):
        encode_file(path)
    with pytest.raises(CorpusError, match="is not a file"):
        encode_file(tmp_path)


def test_a_file_that_grows_between_the_two_passes_is_reported(tmp_path, monkeypatch):
    path = tmp_path / "corpus.txt"
    path.write_text("abab")
    passes = []

    def grow_after_first_pass(*args):
        passes.append(1)
        yield from read_chunks(*args)
        if len(passes) == 1:
            path.write_text("ababxyz")

    read_chunks = corpus_module.iter_text
    monkeypatch.setattr(corpus_module, "iter_text", grow_after_first_pass)
    with pytest.raises(CorpusError, match="changed while it was read"):
        encode_file(path)


def test_chunks_must_hold_a_byte(tmp_path):
    (tmp_path / "a.txt").write_text("ab")
    with pytest.raises(ValueError, match="chunk_bytes=0: must be a positive number of bytes"):
        encode_file(tmp_path / "a.txt", chunk_bytes=0)
