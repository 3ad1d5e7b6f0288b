import pytest
import torch

from chargpt.training.matmul import set_matmul_precision


def test_matmul_precision_is_applied_and_checked():
    before = torch.get_float32_matmul_precision()
    try:
        set_matmul_precision("high")
        assert torch.get_float32_matmul_precision() == "high"
    finally:
        torch.set_float32_matmul_precision(before)
    with pytest.raises(ValueError, match="float32_matmul_precision='tf32': must be one of"):
        set_matmul_precision("tf32")
