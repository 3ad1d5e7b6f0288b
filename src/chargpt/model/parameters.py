"""Counting a GPT's parameters, in total and by component (a tied matrix counts once)."""

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
