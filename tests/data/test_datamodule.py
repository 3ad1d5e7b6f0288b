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
        ({"batch_size": 0}, "data.batch_size=0: must be a positive integer"),
        ({"corpus": "shakespeare"}, "exactly one of data.corpus"),
    ],
)
def test_invalid_settings(play_file, kwargs, message):
    with pytest.raises((ValueError, CorpusError), match=message):
        CharDataModule(**(dict(corpus=None, path=str(play_file)) | kwargs))


def test_unknown_corpus_name(tmp_path):
    with pytest.raises(CorpusError, match="unknown corpus 'poems'"):
        CharDataModule(corpus="poems", data_dir=str(tmp_path))
