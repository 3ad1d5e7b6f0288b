"""What a GPT computes inside: every layer's hidden state and attention pattern, for analysis.

Shapes: B batch, T time (sequence), C channels (d_model), nh heads, V vocabulary.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from chargpt.model import GPT
from chargpt.model.gpt import NO_ATTENTION_POSITIONS, AttentionPositions, Block


@dataclass
class Internals:
    """What `inspect_model` returns: logits and, per layer, hidden states and attention patterns."""

    logits: Tensor  # (B, T, V)
    hidden_states: list[Tensor]  # n_layer + 1 tensors (B, T, C): the embeddings, then each block
    attentions: list[Tensor]  # n_layer tensors (B, nh, T, T)


@torch.no_grad()
def inspect_model(model: GPT, idx: Tensor) -> Internals:
    """Run the model on idx (B, T) and keep every layer's hidden state and attention pattern.

    Call `model.eval()` first: the attention patterns are computed without dropout.
    """
    x = model.embed(idx)
    positions = model.position_embedding.in_attention(0, idx.size(1))
    hidden_states, attentions = [x], []
    for block in model.blocks:
        attentions.append(attention_weights(block, x, positions))
        x = block(x, positions)
        hidden_states.append(x)
    return Internals(model.head(model.final_norm(x)), hidden_states, attentions)


def attention_weights(
    block: Block, x: Tensor, positions: AttentionPositions = NO_ATTENTION_POSITIONS
) -> Tensor:
    """The causal attention pattern (B, nh, T, T) that the block applies to its input x."""
    T = x.size(1)
    q, k, _ = block.attn.heads(block.attention_input(x), positions)
    k = k.repeat_interleave(q.size(1) // k.size(1), dim=1)  # grouped-query: a key head per group
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))  # (B, nh, T, T)
    if positions.bias is not None:  # ALiBi's, with the causal mask in it
        return (scores + positions.bias).softmax(dim=-1)
    future = torch.ones(T, T, dtype=torch.bool, device=x.device).triu(1)
    return scores.masked_fill(future, float("-inf")).softmax(dim=-1)
