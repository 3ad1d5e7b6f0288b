"""Training FLOPs per token of a GPT, and model FLOPs utilisation (MFU).

    flops_per_token = 6·N + 12·n_layer·d_model·T

N counts the weights that multiply activations: the attention and MLP matrices (with their
biases) of every block, and the output head (vocab_size·d_model, counted even when it shares
its matrix with the token embedding, because the product is computed either way). Embedding
look-ups and norms do no matmuls and are left out. Each such weight costs 2 FLOPs per token in
the forward pass and 4 in the backward pass: 6·N. Attention adds, per layer and token, a
T-long dot product with every key and a T-long weighted sum of values, 2·d_model·T FLOPs each
forward; times 3 for forward plus backward: 12·n_layer·d_model·T. As in nanoGPT's
`estimate_mfu` (after the PaLM paper, appendix B), the causal mask's skipped half is counted,
so MFU is comparable with theirs.
"""

from __future__ import annotations

from chargpt.model import GPT
from chargpt.model.parameters import parameter_breakdown


def matmul_parameters(model: GPT) -> int:
    """N above: attention and MLP weights (biases included) plus the head's vocab×d_model."""
    breakdown = parameter_breakdown(model)
    config = model.config
    return breakdown["attention"] + breakdown["mlp"] + config.vocab_size * config.d_model


def training_flops_per_token(model: GPT, context: int | None = None) -> int:
    """Forward + backward FLOPs per trained token at context length `context` (default block)."""
    config = model.config
    T = config.block_size if context is None else context
    return 6 * matmul_parameters(model) + 12 * config.n_layer * config.d_model * T


def mfu(flops_per_token: float, tokens_per_s: float, peak_flops_per_s: float) -> float:
    """Share of the peak rate spent on the model's own arithmetic (0..1)."""
    return flops_per_token * tokens_per_s / peak_flops_per_s
