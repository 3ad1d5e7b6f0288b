import pytest
import torch

from chargpt.data import CorpusError
from chargpt.data.datamodule import CharDataModule


def make(play_file, **kwargs) -> CharDataModule:
    settings = dict(corpus=None, path=str(play_file), block_size=16, batch_size=4) | kwargs
    datamodule = CharDataModule(**settings)
    datamodule.setup("fit")
    return datamodule


def test_targets_are_inputs_shifted_by_one(play_file):
    datamodule = make(play_file)
    x, y = next(iter(datamodule.train_dataloader()))
    assert x.shape == y.shape == (4, 16) and x.dtype == torch.long
    assert torch.equal(x[:, 1:], y[:, :-1])
    train = datamodule.train_tokens.long()
    for row_x, row_y in zip(x, y, strict=True):
        # Each window is a real slice of the training text.
        starts = [i for i in range(len(train) - 16) if torch.equal(train[i : i + 16], row_x)]
        assert any(torch.equal(train[i + 1 : i + 17], row_y) for i in starts)


def test_splits_are_disjoint_contiguous_and_sized(play_file):
    datamodule = make(play_file, splits=[0.8, 0.1, 0.1])
    n = sum(
        len(t) for t in (datamodule.train_tokens, datamodule.val_tokens, datamodule.test_tokens)
    )
    everything = datamodule.tokenizer.encode_tensor(play_file.read_text())
    assert n == len(everything)
    assert len(datamodule.train_tokens) == int(0.8 * n)
    assert len(datamodule.val_tokens) == int(0.1 * n)
    joined = torch.cat([datamodule.train_tokens, datamodule.val_tokens, datamodule.test_tokens])
    assert torch.equal(joined, everything)  # split by position, nothing shared or lost


def test_eval_windows_are_fixed_and_cover_the_split(play_file):
    datamodule = make(play_file)
    first = [b[0] for b in datamodule.val_dataloader()]
    second = [b[0] for b in datamodule.val_dataloader()]
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
    x = torch.cat(first)
    assert torch.equal(x.flatten(), datamodule.val_tokens[: x.numel()].long())


def test_training_order_depends_on_the_seed_only(play_file):
    a = next(iter(make(play_file, seed=1).train_dataloader()))[0]
    b = next(iter(make(play_file, seed=1).train_dataloader()))[0]
    c = next(iter(make(play_file, seed=2).train_dataloader()))[0]
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_block_size_longer_than_a_split_is_rejected(play_file):
    with pytest.raises(CorpusError, match=r"the val split has .* fewer than block_size"):
        make(play_file, block_size=2000)


def test_single_character_corpus_is_rejected(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("a" * 1000)
    with pytest.raises(CorpusError, match="single distinct character"):
        make(path)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"splits": [0.9, 0.1]}, "three positive fractions"),
        ({"splits": [0.5, 0.3, 0.3]}, "three positive fractions"),
        ({"splits": "abc"}, r"data.splits='abc': not a list of three numbers; give three"),
        ({"splits": ["0.9", "0.05", "0.05"]}, "not a list of three numbers"),
        ({"splits": [0.5, 0.5, False]}, "not a list of three numbers"),
        ({"splits": [0.9, float("nan"), 0.05]}, "each fraction must be positive and finite"),
        ({"splits": [0.9, float("inf"), 0.05]}, "each fraction must be positive and finite"),
        ({"splits": [0.5, 0.3, 0.3]}, r"they sum to 1.1; give three positive fractions"),
        ({"batch_size": 0}, "data.batch_size=0: must be a positive integer"),
        ({"batch_size": True}, "data.batch_size=True: must be a positive integer"),
        ({"block_size": "16"}, "data.block_size='16': must be a positive integer"),
        ({"eval_batch_size": 2.0}, "data.eval_batch_size=2.0: must be a positive integer"),
        (
            {"num_workers": -1},
            r"data.num_workers=-1: must be an integer >= 0 \(0 loads batches in the training",
        ),
        ({"num_workers": "2"}, "data.num_workers='2': must be an integer >= 0"),
        ({"num_workers": 1.5}, "data.num_workers=1.5: must be an integer >= 0"),
        ({"encoding_errors": "ignore"}, "data.encoding_errors='ignore': must be one of"),
        ({"corpus": "shakespeare"}, "exactly one of data.corpus"),
    ],
)
def test_invalid_settings(tmp_path, kwargs, message):
    # The file does not exist: the settings fail before anything is read.
    with pytest.raises((ValueError, CorpusError), match=message):
        CharDataModule(**(dict(corpus=None, path=str(tmp_path / "missing.txt")) | kwargs))


def test_unknown_corpus_name(tmp_path):
    with pytest.raises(CorpusError, match="unknown corpus 'poems'"):
        CharDataModule(corpus="poems", data_dir=str(tmp_path))


def test_a_bad_byte_beyond_the_first_megabyte_is_reported_at_its_offset(tmp_path):
    path = tmp_path / "big.txt"
    path.write_bytes(b"ab\n" * 400_000 + "é".encode()[:1] + b"cd\n")
    with pytest.raises(CorpusError, match="invalid byte 0xc3 at offset 1200000;"):
        make(path)
    datamodule = make(path, encoding_errors="replace")
    assert datamodule.tokenizer.chars == ["\n", "a", "b", "c", "d", "\ufffd"]
    assert datamodule.test_tokens[-4:].tolist() == [5, 3, 4, 0]


def test_eval_batches_are_the_consecutive_windows_of_the_split(play_file):
    datamodule = make(play_file, eval_batch_size=7)
    tokens, block = datamodule.val_tokens, 16
    count = (len(tokens) - 1) // block
    starts = torch.arange(count) * block
    windows = tokens[starts.unsqueeze(1) + torch.arange(block + 1)].long()
    batches = list(datamodule.val_dataloader())
    assert [len(x) for x, _ in batches] == [len(b) for b in windows.split(7)]
    assert torch.equal(torch.cat([x for x, _ in batches]), windows[:, :-1])
    assert torch.equal(torch.cat([y for _, y in batches]), windows[:, 1:])
    assert all(x.dtype == y.dtype == torch.long for x, y in batches)
    dataset = datamodule.test_dataloader().dataset
    assert len(list(dataset)) == len(dataset)  # iterating stops at the last window
    start = (len(dataset) - 1) * block
    last = datamodule.test_tokens[start : start + block + 1].long()
    assert all(map(torch.equal, dataset[-1], (last[:-1], last[1:])))
