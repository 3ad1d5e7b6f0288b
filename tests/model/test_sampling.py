import pytest
import torch

from chargpt.model.sampling import check_sampling_args, sample_next, top_k_filter, top_p_filter


def test_top_k_keeps_exactly_the_k_largest():
    logits = torch.tensor([[1.0, 5.0, 3.0, 4.0, 2.0]])
    kept = torch.isfinite(top_k_filter(logits, 2))
    assert kept.tolist() == [[False, True, False, True, False]]


def test_top_p_keeps_the_smallest_nucleus_reaching_p():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    logits = probs.log()
    assert torch.isfinite(top_p_filter(logits, 0.5)).tolist() == [[True, False, False, False]]
    assert torch.isfinite(top_p_filter(logits, 0.8)).tolist() == [[True, True, False, False]]
    assert torch.isfinite(top_p_filter(logits, 0.81)).tolist() == [[True, True, True, False]]
    # The nucleus is found per row, whatever the order of the vocabulary.
    shuffled = logits[:, [3, 1, 0, 2]]
    assert torch.isfinite(top_p_filter(shuffled, 0.8)).tolist() == [[False, True, True, False]]


def test_temperature_zero_is_greedy():
    logits = torch.tensor([[0.1, 2.0, 1.9], [3.0, 0.0, 0.0]])
    assert sample_next(logits, temperature=0).tolist() == [[1], [0]]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"temperature": -1.0}, "temperature=-1.0: must be >= 0"),
        ({"top_k": 0}, "top_k=0: must be between 1 and the vocabulary size 5"),
        ({"top_k": 6}, "top_k=6: must be between 1 and the vocabulary size 5"),
        ({"top_p": 0.0}, r"top_p=0.0: must be in \(0, 1\]"),
        ({"top_p": 1.5}, r"top_p=1.5: must be in \(0, 1\]"),
    ],
)
def test_invalid_sampling_arguments(kwargs, message):
    args = {"temperature": 1.0, "top_k": None, "top_p": None} | kwargs
    with pytest.raises(ValueError, match=message):
        check_sampling_args(5, **args)
