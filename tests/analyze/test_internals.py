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


VARIANTS = [
    dict(norm_position="pre"),
    dict(norm_position="post"),
    dict(norm_position="peri", pos_encoding="rope", qk_norm=True),
    dict(norm_position="deepnorm", pos_encoding="alibi", n_kv_head=1),
    dict(pos_encoding="rope", n_kv_head=2, n_head=4),
]


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: "-".join(map(str, v.values())))
def test_attention_weights_are_the_ones_the_block_applies(variant):
    model = tiny_model(**variant)
    block = model.blocks[0]
    positions = model.position_embedding.in_attention(0, 10)
    x = torch.randn(2, 10, 16)
    attention_input = block.attention_input(x)
    _, _, v = block.attn.heads(attention_input, positions)  # (B, n_kv_head, T, hs)
    v = v.repeat_interleave(model.config.n_head // model.config.kv_heads, dim=1)
    weights = attention_weights(block, x, positions)
    assert torch.all(weights.triu(1) == 0)  # no weight on the future
    mixed = (weights @ v).transpose(1, 2).reshape(2, 10, 16)
    torch.testing.assert_close(block.attn.proj(mixed), block.attn(attention_input, positions))
