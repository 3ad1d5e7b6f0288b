"""Looking inside a GPT: the hidden states and attention patterns are the ones forward computes."""

import pytest
import torch

from chargpt.analyze.internals import attention_weights, inspect_model
from chargpt.model import GPT, GPTConfig


def tiny_model(**overrides) -> GPT:
    settings = dict(vocab_size=11, block_size=16, n_layer=2, n_head=2, d_model=16) | overrides
    return GPT(GPTConfig(**settings)).eval()


def test_inspect_returns_hidden_states_and_attention_that_match_forward():
    model = tiny_model()
    idx = torch.randint(0, 11, (2, 10))
    internals = inspect_model(model, idx)
    torch.testing.assert_close(internals.logits, model(idx)[0])
    assert len(internals.hidden_states) == 3 and internals.hidden_states[0].shape == (2, 10, 16)
    attention = internals.attentions[0]
    assert attention.shape == (2, 2, 10, 10)
    torch.testing.assert_close(attention.sum(-1), torch.ones(2, 2, 10))
    assert torch.all(attention.triu(1) == 0)  # no weight on the future


@pytest.mark.parametrize("norm_position", ["pre", "post"])
def test_attention_weights_are_the_ones_the_block_applies(norm_position):
    block = tiny_model(norm_position=norm_position).blocks[0]
    x = torch.randn(2, 10, 16)
    attention_input = block.norm1(x) if norm_position == "pre" else x
    _, _, v = block.attn.heads(attention_input)  # (B, nh, T, hs)
    mixed = (attention_weights(block, x) @ v).transpose(1, 2).reshape(2, 10, 16)
    torch.testing.assert_close(block.attn.proj(mixed), block.attn(attention_input))
