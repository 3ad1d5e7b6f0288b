"""What a GPT config costs: parameters by component, and the memory one training step needs.

Parameters are counted by `chargpt.model.parameters` on a model built on the meta device, so
that no weights are allocated. Memory is estimated from a list of what the implementation keeps:

- parameters, gradients and AdamW's two states (exp_avg, exp_avg_sq) are 4-byte fp32 numbers, also
  under mixed precision, where autocast computes in 16 bits but the weights stay fp32; with
  optimizer=muon the blocks' matrices keep one state (Muon's momentum) instead of two;
- activations are the tensors the forward pass saves for the backward pass, tensor by tensor:
  per block the fp32 inputs of both norms and their per-token statistics (RMSNorm, composite in
  PyTorch, also keeps its normalised input), the input of every Linear, q, k and v, the attention
  output, the log-sum-exp per head and token, the MLP's hidden activations (GELU and squared
  ReLU: 2, SwiGLU: 4 tensors of the hidden width); peri's output norms; with qk_norm each head
  norm's fp32 input, statistics and output; the rotated q and k (rope) and its cos/sin tables,
  ALiBi's (1, nh, T, T) bias; k and v at n_kv_head heads (`attention_layer_bytes` says which
  tensor each precision keeps); then the final norm (pre and peri), the head's input, the fp32
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
from chargpt.model.gpt import NORM_PLACEMENTS
from chargpt.model.parameters import parameter_breakdown
from chargpt.training.optim import hidden_matrices

FP32_BYTES = 4
INDEX_BYTES = 8  # token ids and targets are int64
MASK_BYTES = 1


@dataclass(frozen=True)
class ParameterCount:
    """One model's parameters by component (a tied head counts 0) and its Linear weights."""

    components: dict[str, int]
    # Elements of every Linear weight, the head's included even when tied: autocast copies these.
    linear_weights: int
    hidden_matrices: int = 0  # elements of the blocks' Linear weights: what Muon optimises

    @property
    def total(self) -> int:
        return sum(self.components.values())


def count_parameters(config: GPTConfig) -> ParameterCount:
    """The model's own count, from a GPT built on the meta device (shapes only, no memory)."""
    with torch.device("meta"):
        model = GPT(config)
    linear_weights = sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Linear))
    hidden = sum(p.numel() for p in hidden_matrices(model))
    return ParameterCount(parameter_breakdown(model), linear_weights, hidden)


# The optimizer states the estimate knows (optimizer.algorithm).
OPTIMIZER_STATES = ("adamw", "muon")


def kv_cache_bytes(config: GPTConfig, batch_size: int = 1, dtype_bytes: int = FP32_BYTES) -> int:
    """The KV cache generation allocates (`chargpt.model.kv_cache.KVCache`): keys and values of
    block_size positions, n_kv_head heads, every layer."""
    per_layer = 2 * batch_size * config.kv_heads * config.block_size * config.head_size
    return config.n_layer * per_layer * dtype_bytes


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
    """Bytes for one training step; see the module docstring for what is counted."""

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
    config: GPTConfig,
    batch_size: int,
    context: int | None = None,
    precision: str = "fp32",
    optimizer: str = "adamw",
) -> MemoryEstimate:
    """Training memory at `batch_size` sequences of `context` tokens (default: block_size),
    with `optimizer` (optimizer.algorithm): adamw keeps two fp32 states per parameter, muon one
    (its momentum) per hidden matrix element and AdamW's two for the rest."""
    context = config.block_size if context is None else context
    _check_positive("batch_size", batch_size)
    _check_positive("context", context)
    if precision not in PRECISIONS:
        raise SettingError(f"precision={precision!r}: must be one of {', '.join(PRECISIONS)}")
    if optimizer not in OPTIMIZER_STATES:
        raise SettingError(f"optimizer={optimizer!r}: must be one of {', '.join(OPTIMIZER_STATES)}")
    chosen = PRECISIONS[precision]
    counted = count_parameters(config)
    weight_bytes = counted.total * FP32_BYTES
    muon_elements = counted.hidden_matrices if optimizer == "muon" else 0
    return MemoryEstimate(
        parameters=weight_bytes,
        gradients=weight_bytes,
        optimizer=(2 * (counted.total - muon_elements) + muon_elements) * FP32_BYTES,
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
    placement = NORM_PLACEMENTS[config.norm_position]
    # Two norms per block (four with peri's output norms), and the final norm where the
    # stream leaves the last block unnormalised.
    norms_per_block = 4 if placement.output_norms else 2
    # Every norm keeps its fp32 input and per-token statistics (LayerNorm: mean and 1/std).
    per_norm = width * FP32_BYTES + 2 * tokens * FP32_BYTES
    if config.norm == "rmsnorm":
        per_norm = 2 * width * FP32_BYTES + tokens * FP32_BYTES
    norms = (config.n_layer * 2 + placement.final_norm) * per_norm
    if placement.output_norms:  # their inputs, the branches' outputs, are in compute precision
        per_output_norm = per_norm
        if config.norm == "layernorm":
            per_output_norm = width * low + 2 * tokens * FP32_BYTES
        norms += config.n_layer * (norms_per_block - 2) * per_output_norm
    hidden_tensors = 4 if config.mlp == "swiglu" else 2  # SwiGLU: gate|value, silu(gate), product
    mlp = width * low + hidden_tensors * tokens * config.mlp_hidden * low
    positions = context * INDEX_BYTES if config.pos_encoding == "learned" else 0
    # Head input, fp32 log-probabilities, targets, and the loss's scalar normaliser.
    head = width * low + tokens * config.vocab_size * FP32_BYTES + tokens * INDEX_BYTES + 4
    masks = (2 * config.n_layer + 1) * width * MASK_BYTES if config.dropout > 0 else 0
    return {
        "embeddings": tokens * INDEX_BYTES + positions,
        "attention": config.n_layer * attention_layer_bytes(config, batch_size, context, precision)
        + attention_shared_bytes(config, context, precision),
        "mlp": config.n_layer * mlp,
        "norms": norms,
        "head_and_loss": head,
        "dropout_masks": masks,
    }


def attention_layer_bytes(
    config: GPTConfig, batch_size: int, context: int, precision: Precision
) -> int:
    """What one attention layer saves (tensor by tensor, as measured on a CPU)."""
    low = precision.compute_bytes
    tokens = batch_size * context
    queries = tokens * config.d_model  # elements of q, and of the attention output
    keys = tokens * config.kv_heads * config.head_size  # of k, and of v
    cast = precision.fp32_attention and low < FP32_BYTES  # the CPU attends bf16 in fp32
    saved = queries * low  # the qkv projection's input
    saved += config.n_head * tokens * FP32_BYTES  # SDPA's log-sum-exp per head and token
    if cast:
        # q, k, v cast to fp32 for SDPA, its fp32 output, and that cast back: proj's input.
        saved += (queries + 2 * keys) * FP32_BYTES + queries * FP32_BYTES + queries * low
    else:
        # q, k, v are views of the projection's output; the attention output is proj's input.
        saved += (queries + 2 * keys) * low + queries * low
    if config.qk_norm:
        # Each HeadNorm: its input cast to fp32 (a view when already fp32), 1/rms per head and
        # token, and its fp32 normalised output.
        if low < FP32_BYTES:
            saved += (queries + keys) * FP32_BYTES
        saved += (config.n_head + config.kv_heads) * tokens * FP32_BYTES
        saved += (queries + keys) * FP32_BYTES
    if (config.qk_norm or config.pos_encoding == "rope") and not cast:
        # New q and k reach SDPA (rotated, or laid out anew after the norm); under the CPU's
        # fp32 attention the fp32 casts counted above are those.
        saved += (queries + keys) * low
    if config.pos_encoding == "rope" and low < FP32_BYTES:
        saved += 2 * context * config.head_size * low  # cos and sin cast to bf16, per layer
    if config.pos_encoding == "alibi" and not attends_in_fp32(precision):
        saved += alibi_bias_elements(config, context) * low  # the bias cast to bf16, per layer
    return saved


def attention_shared_bytes(config: GPTConfig, context: int, precision: Precision) -> int:
    """What every layer's attention shares, saved once: the fp32 rotary tables (whole
    buffers: the layers see slices of them), ALiBi's fp32 bias."""
    if config.pos_encoding == "rope" and precision.compute_bytes == FP32_BYTES:
        return 2 * config.block_size * config.head_size * FP32_BYTES
    if config.pos_encoding == "alibi" and attends_in_fp32(precision):
        return alibi_bias_elements(config, context) * FP32_BYTES
    return 0


def attends_in_fp32(precision: Precision) -> bool:
    """Whether SDPA runs in fp32: fp32 training, or bf16 on a CPU (`model.gpt.attend`)."""
    return precision.fp32_attention or precision.compute_bytes == FP32_BYTES


def alibi_bias_elements(config: GPTConfig, context: int) -> int:
    return config.n_head * context * context  # (1, nh, T, S) with S = T in training


def attention_matrix_bytes(
    config: GPTConfig, batch_size: int, context: int, precision: Precision
) -> int:
    """The naive cost of storing attention: one (B, nh, T, T) matrix per layer (math path)."""
    per_layer = batch_size * config.n_head * context * context * precision.compute_bytes
    return config.n_layer * per_layer


def _check_positive(key: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise SettingError(f"{key}={value!r}: must be a positive integer")
