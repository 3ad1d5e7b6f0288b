"""What a GPT config costs: parameters by component, and the memory one training step needs.

Parameters are counted by `chargpt.model.parameters` on a model built on the meta device, so
that no weights are allocated. Memory is estimated from a list of what the implementation keeps:

- parameters, gradients and AdamW's two states (exp_avg, exp_avg_sq) are 4-byte fp32 numbers, also
  under mixed precision, where autocast computes in 16 bits but the weights stay fp32;
- activations are the tensors the forward pass saves for the backward pass, tensor by tensor:
  per block the fp32 inputs of both norms and their per-token statistics (RMSNorm, composite in
  PyTorch, also keeps its normalised input), the input of every Linear, q, k and v, the attention
  output, the log-sum-exp per head and token, the MLP's hidden activations (GELU: 2, SwiGLU: 4
  tensors of the hidden width); then the final norm (pre-norm only), the head's input, the fp32
  log-probabilities of the loss, and the token ids and targets (int64). Linear inputs, q/k/v and
  hidden activations take `compute_bytes` (2 under bf16-mixed); norms, statistics and the loss
  stay fp32.
  Under mixed precision autocast also keeps a 16-bit copy of every Linear weight for the backward.
  Dropout masks (only with dropout > 0) count 1 byte per element, as CUDA's kernels store them.
  The logits returned by `forward` are not counted: the training step drops them before backward.
- attention: `F.scaled_dot_product_attention` with the flash or memory-efficient kernels never
  stores the (T, T) attention matrix, only q, k, v, the output and the log-sum-exp; the counts
  above assume those kernels. The math path (CPU with dropout, or unsupported shapes) also keeps
  one (T, T) probability matrix per head and layer, B·nh·T² elements per layer (with dropout also
  the dropped copy and its mask): that one matrix is reported separately as `attention_matrices`,
  the naive cost of materialising attention, and `attention_share` is its share of all
  activations if it were stored.

Not counted: temporary buffers during a kernel, the allocator's fragmentation, the CUDA context.
Run with dropout 0 on a CPU in float32 or bfloat16 autocast, the saved tensors add up to these
activations exactly (tests/analyze/test_analyze.py measures them).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn

from chargpt.errors import SettingError
from chargpt.model import GPT, GPTConfig
from chargpt.model.parameters import parameter_breakdown

FP32_BYTES = 4
INDEX_BYTES = 8  # token ids and targets are int64
MASK_BYTES = 1


@dataclass(frozen=True)
class ParameterCount:
    """One model's parameters by component (a tied head counts 0) and its Linear weights."""

    components: dict[str, int]
    # Elements of every Linear weight, the head's included even when tied: autocast copies these.
    linear_weights: int

    @property
    def total(self) -> int:
        return sum(self.components.values())


def count_parameters(config: GPTConfig) -> ParameterCount:
    """The model's own count, from a GPT built on the meta device (shapes only, no memory)."""
    with torch.device("meta"):
        model = GPT(config)
    linear_weights = sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Linear))
    return ParameterCount(parameter_breakdown(model), linear_weights)


@dataclass(frozen=True)
class TyingComparison:
    tied: ParameterCount
    untied: ParameterCount

    @property
    def saving(self) -> int:
        """Parameters saved by sharing the embedding with the head: vocab_size·d_model."""
        return self.untied.total - self.tied.total


def compare_tying(config: GPTConfig) -> TyingComparison:
    """The config counted both ways, whatever its own `tie_weights`."""
    return TyingComparison(
        tied=count_parameters(replace(config, tie_weights=True)),
        untied=count_parameters(replace(config, tie_weights=False)),
    )


@dataclass(frozen=True)
class Precision:
    name: str
    compute_bytes: int  # Linear inputs and outputs, q/k/v, MLP activations
    weight_copies: bool  # autocast keeps a compute-precision copy of each Linear weight
    # On a CPU `model.gpt.attend` casts bf16 q, k, v to fp32 (the CPU's bf16 flash backward is
    # slow): attention then keeps fp32 q, k, v and output instead of the bf16 ones.
    fp32_attention: bool = False


PRECISIONS = {
    "fp32": Precision("fp32", compute_bytes=4, weight_copies=False),
    "bf16-mixed": Precision("bf16-mixed", compute_bytes=2, weight_copies=True),
    "bf16-mixed-cpu": Precision(
        "bf16-mixed-cpu", compute_bytes=2, weight_copies=True, fp32_attention=True
    ),
}
# Lightning's `trainer.precision` values the estimate knows, and the precision each one means.
TRAINER_PRECISIONS = {"32-true": "fp32", "32": "fp32", "bf16-mixed": "bf16-mixed"}


def precision_of(trainer_precision: object, on_cpu: bool = False) -> Precision:
    """The estimate's precision for Lightning's setting, on a CPU or a GPU."""
    key = str(trainer_precision)
    if key not in TRAINER_PRECISIONS:
        raise SettingError(
            f"trainer.precision={trainer_precision!r}: the memory estimate knows "
            f"auto, {', '.join(TRAINER_PRECISIONS)}"
        )
    name = TRAINER_PRECISIONS[key]
    return PRECISIONS[f"{name}-cpu" if on_cpu and f"{name}-cpu" in PRECISIONS else name]


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes for one training step with AdamW; see the module docstring for what is counted."""

    parameters: int
    gradients: int
    optimizer: int
    weight_copies: int
    activations: dict[str, int]  # by component
    attention_matrices: int  # naive: one (T, T) matrix per head and layer, not in the total

    @property
    def activation_total(self) -> int:
        return sum(self.activations.values())

    @property
    def total(self) -> int:
        """With flash or memory-efficient attention."""
        return (
            self.parameters
            + self.gradients
            + self.optimizer
            + self.weight_copies
            + self.activation_total
        )

    @property
    def total_with_attention_matrices(self) -> int:
        return self.total + self.attention_matrices

    @property
    def attention_share(self) -> float:
        """The (T, T) matrices' share of all activations, were they stored."""
        return self.attention_matrices / (self.activation_total + self.attention_matrices)


def estimate_memory(
    config: GPTConfig, batch_size: int, context: int | None = None, precision: str = "fp32"
) -> MemoryEstimate:
    """Training memory at `batch_size` sequences of `context` tokens (default: block_size)."""
    context = config.block_size if context is None else context
    _check_positive("batch_size", batch_size)
    _check_positive("context", context)
    if precision not in PRECISIONS:
        raise SettingError(f"precision={precision!r}: must be one of {', '.join(PRECISIONS)}")
    chosen = PRECISIONS[precision]
    counted = count_parameters(config)
    weight_bytes = counted.total * FP32_BYTES
    return MemoryEstimate(
        parameters=weight_bytes,
        gradients=weight_bytes,
        optimizer=2 * weight_bytes,
        weight_copies=counted.linear_weights * chosen.compute_bytes if chosen.weight_copies else 0,
        activations=activation_bytes(config, batch_size, context, chosen),
        attention_matrices=attention_matrix_bytes(config, batch_size, context, chosen),
    )


def activation_bytes(
    config: GPTConfig, batch_size: int, context: int, precision: Precision
) -> dict[str, int]:
    """Bytes the forward pass saves for backward, by component (fused attention kernels)."""
    tokens = batch_size * context
    width = tokens * config.d_model  # elements of one (B, T, C) tensor
    low = precision.compute_bytes
    n_norms = 2 * config.n_layer + (config.norm_position == "pre")
    # Every norm keeps its fp32 input and per-token statistics (LayerNorm: mean and 1/std).
    per_norm = width * FP32_BYTES + 2 * tokens * FP32_BYTES
    if config.norm == "rmsnorm":
        per_norm = 2 * width * FP32_BYTES + tokens * FP32_BYTES
    # Per block: the qkv input, q/k/v (one tensor), the projection's input; fp32 log-sum-exp.
    attention = 5 * width * low + config.n_head * tokens * FP32_BYTES
    if precision.fp32_attention:  # q/k/v cast to fp32, and the fp32 output SDPA keeps
        attention += 3 * width * (FP32_BYTES - low) + width * FP32_BYTES
    hidden_tensors = 2 if config.mlp == "gelu" else 4  # SwiGLU: gate|value, silu(gate), product
    mlp = width * low + hidden_tensors * tokens * config.mlp_hidden * low
    positions = context * INDEX_BYTES if config.pos_encoding == "learned" else 0
    # Head input, fp32 log-probabilities, targets, and the loss's scalar normaliser.
    head = width * low + tokens * config.vocab_size * FP32_BYTES + tokens * INDEX_BYTES + 4
    masks = (2 * config.n_layer + 1) * width * MASK_BYTES if config.dropout > 0 else 0
    return {
        "embeddings": tokens * INDEX_BYTES + positions,
        "attention": config.n_layer * attention,
        "mlp": config.n_layer * mlp,
        "norms": n_norms * per_norm,
        "head_and_loss": head,
        "dropout_masks": masks,
    }


def attention_matrix_bytes(
    config: GPTConfig, batch_size: int, context: int, precision: Precision
) -> int:
    """The naive cost of storing attention: one (B, nh, T, T) matrix per layer (math path)."""
    per_layer = batch_size * config.n_head * context * context * precision.compute_bytes
    return config.n_layer * per_layer


def _check_positive(key: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise SettingError(f"{key}={value!r}: must be a positive integer")
