"""Counting a GPT's parameters, in total and by component (a tied matrix counts once), and the
training FLOPs per token they imply:

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

from torch import nn

from chargpt.model.gpt import GPT

COMPONENTS = ("token_embedding", "position_embedding", "attention", "mlp", "norms", "head")


def num_parameters(model: nn.Module) -> int:
    """Trainable parameters; a tied embedding/head matrix counts once."""
    return sum(p.numel() for p in model.parameters())


def parameter_breakdown(model: GPT) -> dict[str, int]:
    """Parameters per component; they add up to `num_parameters` (a tied head counts 0)."""
    components = dict.fromkeys(COMPONENTS, 0)
    for name, p in model.named_parameters():  # shared parameters are listed once
        components[_component_of(name)] += p.numel()
    return components


def _component_of(parameter_name: str) -> str:
    for prefix in ("token_embedding", "position_embedding", "head"):
        if parameter_name.startswith(prefix):
            return prefix
    if ".attn." in parameter_name:
        return "attention"
    if ".mlp." in parameter_name:
        return "mlp"
    return "norms"


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
