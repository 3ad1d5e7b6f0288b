import json

import pytest
import torch

from chargpt.data import CharTokenizer, UnknownCharacterError


def test_vocabulary_is_sorted_distinct_characters():
    tokenizer = CharTokenizer.from_text("hello world")
    assert tokenizer.chars == [" ", "d", "e", "h", "l", "o", "r", "w"]
    assert tokenizer.vocab_size == 8


def test_encode_decode_round_trip(play_text):
    tokenizer = CharTokenizer.from_text(play_text)
    assert tokenizer.decode(tokenizer.encode(play_text)) == play_text


def test_json_round_trip():
    tokenizer = CharTokenizer.from_text("naïve café\n")
    restored = CharTokenizer.from_dict(json.loads(json.dumps(tokenizer.to_dict())))
    assert restored == tokenizer
    assert restored.encode("café") == tokenizer.encode("café")


def test_unknown_characters_are_named():
    tokenizer = CharTokenizer.from_text("abc")
    with pytest.raises(UnknownCharacterError, match=r"not in the vocabulary: '!', 'z'"):
        tokenizer.encode("abz!z")


def test_tensor_is_compact():
    assert CharTokenizer.from_text("abc").encode_tensor("cab").dtype == torch.uint8
    wide = CharTokenizer([chr(0x4E00 + i) for i in range(300)])
    assert wide.encode_tensor(chr(0x4E00 + 299)).dtype == torch.int32


def test_tensor_encoding_equals_the_list_encoding():
    text = "naïve café 😀\r\n吾輩は猫である"
    tokenizer = CharTokenizer.from_text(text)
    assert tokenizer.encode_tensor(text).tolist() == tokenizer.encode(text)
    assert tokenizer.encode_tensor("").shape == (0,)
    # A lone surrogate can come in through a checkpoint's vocabulary; it encodes as any character.
    odd = CharTokenizer(["a", "\ud800"])
    assert odd.encode_tensor("a\ud800a").tolist() == [0, 1, 0]


@pytest.mark.parametrize("text", ["abz", "ab!", "ab😀"])  # inside, below and above the known range
def test_tensor_encoding_names_unknown_characters(text):
    tokenizer = CharTokenizer.from_text("abcy")
    with pytest.raises(UnknownCharacterError, match=f"not in the vocabulary: {text[-1]!r}"):
        tokenizer.encode_tensor(text)
