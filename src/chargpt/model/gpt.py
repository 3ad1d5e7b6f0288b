"""A GPT language model in plain PyTorch, read top to bottom: norms, attention, MLP, block,
positions, GPT. Each variant a `GPTConfig` string names is a class in the dictionary beside it.

Shapes: B batch, T time (sequence), C channels (d_model), nh heads, hs head size, V vocabulary.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from chargpt.model.config import GPTConfig
from chargpt.model.kv_cache import KVCache, LayerKVCache
from chargpt.model.sampling import SamplingConfig, sample_next


class LayerNorm(nn.LayerNorm):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__(config.d_model, bias=config.bias)


class RMSNorm(nn.RMSNorm):
    """Scales by the root mean square only: no centring and no bias."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__(config.d_model)


NORMS: dict[str, type[nn.Module]] = {"layernorm": LayerNorm, "rmsnorm": RMSNorm}


def attend(
    q: Tensor, k: Tensor, v: Tensor, dropout: float = 0.0, bias: Tensor | None = None
) -> Tensor:
    """Causal attention of T queries, the last T of the S positions in k, v; (B, nh, T, hs).

    k and v may have fewer heads than q (grouped-query attention): each serves nh / n_kv_head
    consecutive query heads. `bias` (1, nh, T, S), when given, is added to the scores and holds the
    causal mask itself as -inf (ALiBi).

    bf16 on a CPU is attended in fp32: PyTorch's CPU flash-attention backward ran 4-10x slower
    in bf16 than in fp32 (2.13, AVX512-BF16), which made bf16 autocast slower than fp32 for the
    whole step; q, k and v are small, so the casts cost little (benchmarks/README.md).
    """
    if q.dtype == torch.bfloat16 and q.device.type == "cpu":
        with torch.autocast("cpu", enabled=False):
            y = _causal_attention(q.float(), k.float(), v.float(), dropout, bias)
            return y.to(q.dtype)
    return _causal_attention(q, k, v, dropout, bias)


def _causal_attention(
    q: Tensor, k: Tensor, v: Tensor, dropout: float, bias: Tensor | None
) -> Tensor:
    T, S = q.size(2), k.size(2)
    options = {"dropout_p": dropout, "enable_gqa": k.size(1) != q.size(1)}
    if bias is not None:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype), **options)
    if T == 1:  # one new token: everything cached lies in its past
        return F.scaled_dot_product_attention(q, k, v, **options)
    if T == S:  # no cache, or a prefill into an empty one
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, **options)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=causal_mask(T, S, q.device), **options)


def causal_mask(T: int, S: int, device: torch.device | str | None = None) -> Tensor:
    """(T, S) True where query i, at position S - T + i, may see key j: j <= S - T + i.

    SDPA's is_causal aligns the mask to the top left, which is wrong once keys are cached.
    """
    return torch.ones(T, S, dtype=torch.bool, device=device).tril(diagonal=S - T)


@dataclass(frozen=True)
class AttentionPositions:
    """How positions enter attention, for one forward pass: each layer reads the same.

    cos, sin (T, hs): the rotation of rotary positions at the new tokens' positions; bias
    (1, nh, T, S): ALiBi's distance penalties with the causal mask as -inf. None: not used.
    """

    cos: Tensor | None = None
    sin: Tensor | None = None
    bias: Tensor | None = None


NO_ATTENTION_POSITIONS = AttentionPositions()


def rotate(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotary embedding of x (..., hs): each pair (x_i, x_{i + hs/2}) turned by its angle."""
    first, second = x.chunk(2, dim=-1)
    return x * cos + torch.cat((-second, first), dim=-1) * sin


class HeadNorm(nn.RMSNorm):
    """QK-norm: RMSNorm over each head's head_size channels, its gains shared by the heads.

    Computed in the gains' precision (fp32) and returned in the input's dtype: under bf16
    autocast the queries are bf16 and the gains fp32, a pair PyTorch's fused kernel refuses (it
    warns and falls back).
    """

    def __init__(self, config: GPTConfig) -> None:
        super().__init__(config.head_size)

    def forward(self, x: Tensor) -> Tensor:
        wide = torch.promote_types(x.dtype, self.weight.dtype)
        return super().forward(x.to(wide)).to(x.dtype)


class CausalSelfAttention(nn.Module):
    """Multi-head attention; with n_kv_head < n_head, grouped-query attention.

    One matmul makes the n_head queries and the n_kv_head keys and values. With qk_norm the
    queries and keys are RMS-normalised per head, then (rope) rotated; the cache keeps keys as
    attention uses them, so cached and recomputed attention are the same numbers.
    """

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.n_head, self.n_kv_head, self.head_size = (
            config.n_head,
            config.kv_heads,
            config.head_size,
        )
        self.dropout = config.dropout
        kv_width = self.n_kv_head * self.head_size
        self.split_sizes = (config.d_model, kv_width, kv_width)
        self.qkv = nn.Linear(config.d_model, sum(self.split_sizes), bias=config.bias)
        self.proj = nn.Linear(config.d_model, config.d_model, bias=config.bias)
        self.resid_dropout = nn.Dropout(config.dropout)
        if config.qk_norm:
            self.q_norm, self.k_norm = HeadNorm(config), HeadNorm(config)

    def heads(
        self, x: Tensor, positions: AttentionPositions = NO_ATTENTION_POSITIONS
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Queries (B, nh, T, hs), keys and values (B, n_kv_head, T, hs) of x (B, T, C), the
        queries and keys normalised (qk_norm) and rotated (rope) as attention uses them."""
        B, T, _ = x.shape
        q, k, v = self.qkv(x).split(self.split_sizes, dim=2)
        # (B, T, heads·hs) -> (B, T, heads, hs): normalised and rotated in this layout, so that
        # q, k and v reach attention with the same strides (no copies to align them).
        q = q.view(B, T, self.n_head, self.head_size)
        k, v = (t.view(B, T, self.n_kv_head, self.head_size) for t in (k, v))
        if hasattr(self, "q_norm"):
            q, k = self.q_norm(q), self.k_norm(k)
        if positions.cos is not None:
            # (T, 1, hs) for the (B, T, heads, hs) layout; in q's dtype, since fp32 tables
            # would promote bf16 queries to fp32 under autocast.
            cos, sin = (t.to(q.dtype).unsqueeze(1) for t in (positions.cos, positions.sin))
            q, k = rotate(q, cos, sin), rotate(k, cos, sin)
        return tuple(t.transpose(1, 2) for t in (q, k, v))  # (B, heads, T, hs)

    def forward(
        self,
        x: Tensor,
        positions: AttentionPositions = NO_ATTENTION_POSITIONS,
        cache: LayerKVCache | None = None,
    ) -> Tensor:
        B, T, C = x.shape
        q, k, v = self.heads(x, positions)
        if cache is not None:
            k, v = cache.append(k, v)  # (B, n_kv_head, cached + T, hs)
        dropout = self.dropout if self.training else 0.0
        y = attend(q, k, v, dropout=dropout, bias=positions.bias)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, nh, T, hs) -> (B, T, C)
        return self.resid_dropout(self.proj(y))


class GeluMLP(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.fc = nn.Linear(config.d_model, config.mlp_hidden, bias=config.bias)
        self.proj = nn.Linear(config.mlp_hidden, config.d_model, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.dropout(self.proj(F.gelu(self.fc(x))))


class SwiGLUMLP(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        # Gate and value projections fused into one matmul.
        self.fc = nn.Linear(config.d_model, 2 * config.mlp_hidden, bias=config.bias)
        self.proj = nn.Linear(config.mlp_hidden, config.d_model, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: Tensor) -> Tensor:
        gate, value = self.fc(x).chunk(2, dim=-1)
        return self.dropout(self.proj(F.silu(gate) * value))


class ReLU2MLP(GeluMLP):
    """Squared ReLU, relu(x)², in place of GELU (Primer; modded-nanogpt): same shapes."""

    def forward(self, x: Tensor) -> Tensor:
        return self.dropout(self.proj(F.relu(self.fc(x)).square()))


MLPS: dict[str, type[nn.Module]] = {"gelu": GeluMLP, "swiglu": SwiGLUMLP, "relu2": ReLU2MLP}


Branch = Callable[[Tensor], Tensor]


def _pre_norm(x: Tensor, branch: Branch, norm: nn.Module, out_norm: nn.Module, alpha: float):
    return x + branch(norm(x))


def _post_norm(x: Tensor, branch: Branch, norm: nn.Module, out_norm: nn.Module, alpha: float):
    return norm(x + branch(x))


def _peri_norm(x: Tensor, branch: Branch, norm: nn.Module, out_norm: nn.Module, alpha: float):
    return x + out_norm(branch(norm(x)))


def _deep_norm(x: Tensor, branch: Branch, norm: nn.Module, out_norm: nn.Module, alpha: float):
    return norm(alpha * x + branch(x))


@dataclass(frozen=True)
class NormPlacement:
    """Where a block puts its norms around each residual branch f."""

    residual: Callable[..., Tensor]
    final_norm: bool  # whether the residual stream leaves the last block unnormalised
    branch_input_norm: bool  # whether f sees norm(x) (pre, peri) or x itself (post, deepnorm)
    output_norms: bool = False  # a second norm per branch, on its output (peri)
    deepnorm: bool = False  # DeepNorm's residual scale alpha and branch init scale beta


# pre:      x = x + f(norm(x))                  (GPT-2; needs a final norm)
# post:     x = norm(x + f(x))                  (the original Transformer)
# peri:     x = x + norm_out(f(norm(x)))        (sandwich norm: Gemma 2, CogView; final norm)
# deepnorm: x = norm(alpha·x + f(x)),           alpha = (2N)^(1/4), N = n_layer (DeepNet,
#           Wang et al. 2022, decoder-only); f's value, output and MLP matrices start at
#           beta = (8N)^(-1/4) times the usual std.
NORM_PLACEMENTS: dict[str, NormPlacement] = {
    "pre": NormPlacement(_pre_norm, final_norm=True, branch_input_norm=True),
    "post": NormPlacement(_post_norm, final_norm=False, branch_input_norm=False),
    "peri": NormPlacement(_peri_norm, final_norm=True, branch_input_norm=True, output_norms=True),
    "deepnorm": NormPlacement(_deep_norm, final_norm=False, branch_input_norm=False, deepnorm=True),
}


def deepnorm_alpha(n_layer: int) -> float:
    """DeepNorm's residual scale for a decoder of n_layer blocks: (2N)^(1/4)."""
    return (2 * n_layer) ** 0.25


def deepnorm_beta(n_layer: int) -> float:
    """DeepNorm's init scale of the branch matrices for a decoder of n_layer blocks: (8N)^(-1/4)."""
    return (8 * n_layer) ** -0.25


class Block(nn.Module):
    """One transformer layer: attention then MLP, each a residual branch with norms placed as
    `NORM_PLACEMENTS[config.norm_position]` says."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.placement = NORM_PLACEMENTS[config.norm_position]
        self.alpha = deepnorm_alpha(config.n_layer) if self.placement.deepnorm else 1.0
        self.norm1 = NORMS[config.norm](config)
        self.attn = CausalSelfAttention(config)
        self.norm2 = NORMS[config.norm](config)
        self.mlp = MLPS[config.mlp](config)
        if self.placement.output_norms:
            self.attn_out_norm = NORMS[config.norm](config)
            self.mlp_out_norm = NORMS[config.norm](config)
        else:
            self.attn_out_norm = self.mlp_out_norm = nn.Identity()

    def attention_input(self, x: Tensor) -> Tensor:
        """What the attention branch sees of the block's input x."""
        return self.norm1(x) if self.placement.branch_input_norm else x

    def forward(
        self,
        x: Tensor,
        positions: AttentionPositions = NO_ATTENTION_POSITIONS,
        cache: LayerKVCache | None = None,
    ) -> Tensor:
        residual = self.placement.residual
        x = residual(
            x, lambda h: self.attn(h, positions, cache), self.norm1, self.attn_out_norm, self.alpha
        )
        return residual(x, self.mlp, self.norm2, self.mlp_out_norm, self.alpha)


def sinusoidal_positions(block_size: int, d_model: int) -> Tensor:
    """The fixed sin/cos position table of "Attention Is All You Need", (T, C)."""
    position = torch.arange(block_size).unsqueeze(1)
    frequency = torch.exp(torch.arange(0, d_model, 2) * (-math.log(10000.0) / d_model))
    table = torch.zeros(block_size, d_model)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency[: d_model // 2])
    return table


class AddedPositions:
    """Absolute positions, added to the token embeddings: attention sees no positions."""

    def in_attention(self, start: int, length: int) -> AttentionPositions:
        return NO_ATTENTION_POSITIONS


class LearnedPositions(AddedPositions, nn.Embedding):
    """A trained vector per position, added to the token embeddings."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__(config.block_size, config.d_model)

    def forward(self, x: Tensor, start: int) -> Tensor:
        """x (B, T, C), token embeddings whose first token sits at `start`, plus positions."""
        return x + super().forward(torch.arange(start, start + x.size(1), device=x.device))


class SinusoidalPositions(AddedPositions, nn.Module):
    """The fixed table of `sinusoidal_positions`, added to the scaled token embeddings."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        # The table has unit-scale entries; without the sqrt(d_model) scaling of "Attention Is
        # All You Need" it would drown the 0.02-scale token embeddings.
        self.scale = math.sqrt(config.d_model)
        # A buffer, not a parameter: fixed, yet it moves with .to(device) and is saved.
        self.register_buffer("table", sinusoidal_positions(config.block_size, config.d_model))

    def forward(self, x: Tensor, start: int) -> Tensor:
        """x (B, T, C), token embeddings whose first token sits at `start`, plus positions."""
        return x * self.scale + self.table[start : start + x.size(1)]


class NoPositions(nn.Module):
    """NoPE: no position signal at all; the causal mask alone lets a token tell where it is."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()

    def forward(self, x: Tensor, start: int) -> Tensor:
        return x

    def in_attention(self, start: int, length: int) -> AttentionPositions:
        return NO_ATTENTION_POSITIONS


ROPE_BASE = 10000.0


class RotaryPositions(NoPositions):
    """RoPE (Su et al. 2021): queries and keys are rotated by angles proportional to their
    positions, so their dot product depends on the distance between them alone. Nothing is
    added to the embeddings. The (block_size, hs) cos and sin tables are recomputed, not saved.
    """

    def __init__(self, config: GPTConfig) -> None:
        super().__init__(config)
        half = config.head_size // 2
        frequency = ROPE_BASE ** (-torch.arange(half, dtype=torch.float32) / half)
        angle = torch.outer(torch.arange(config.block_size, dtype=torch.float32), frequency)
        angle = torch.cat((angle, angle), dim=-1)  # (block_size, hs): pair i and i + hs/2
        self.register_buffer("cos", angle.cos(), persistent=False)
        self.register_buffer("sin", angle.sin(), persistent=False)

    def in_attention(self, start: int, length: int) -> AttentionPositions:
        end = start + length
        return AttentionPositions(cos=self.cos[start:end], sin=self.sin[start:end])


def alibi_slopes(n_head: int) -> Tensor:
    """ALiBi's per-head slopes: the geometric sequence 2^(-8/n), 2^(-16/n), ... for n heads a
    power of 2; otherwise those of the power of 2 below, then every other one of the next."""

    def geometric(n: int) -> list[float]:
        return [2 ** (-8 * (i + 1) / n) for i in range(n)]

    below = 2 ** math.floor(math.log2(n_head))
    slopes = geometric(below) + geometric(2 * below)[0::2][: n_head - below]
    return torch.tensor(slopes)


class ALiBiPositions(NoPositions):
    """ALiBi (Press et al. 2022): each head's score of a key d positions back is lowered by
    slope·d; nothing is added to the embeddings."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__(config)
        self.register_buffer("slopes", alibi_slopes(config.n_head), persistent=False)

    def in_attention(self, start: int, length: int) -> AttentionPositions:
        """The bias of `length` queries at start.. over the start + length keys before them."""
        device = self.slopes.device
        queries = torch.arange(start, start + length, device=device).unsqueeze(1)  # (T, 1)
        keys = torch.arange(start + length, device=device).unsqueeze(0)  # (1, S)
        distance = (queries - keys).float()  # (T, S); < 0 for keys in the future
        bias = -self.slopes.view(1, -1, 1, 1) * distance  # (1, nh, T, S)
        # 4-D: with a 3-D mask PyTorch's CPU flash attention refuses and the math path, which
        # stores every (T, S) probability matrix for backward, runs instead.
        bias = bias.masked_fill(distance < 0, float("-inf"))
        return AttentionPositions(bias=bias)


POSITIONS: dict[str, type[nn.Module]] = {
    "learned": LearnedPositions,
    "sinusoidal": SinusoidalPositions,
    "rope": RotaryPositions,
    "alibi": ALiBiPositions,
    "none": NoPositions,
}

# Checkpoints keep the names GPT's weights had before the positions became modules: the
# sinusoidal table was GPT's own buffer `position_table`. GPT saves and loads under these names,
# so every checkpoint, older or newer, loads and resumes, and its names are checked as they are.
SAVED_NAMES = {"position_embedding.table": "position_table"}


def _save_under_saved_names(module: nn.Module, state_dict: dict, prefix: str, *_) -> None:
    for name, saved in SAVED_NAMES.items():
        if prefix + name in state_dict:
            state_dict[prefix + saved] = state_dict.pop(prefix + name)


def _load_from_saved_names(state_dict: dict, prefix: str, *_) -> None:
    for name, saved in SAVED_NAMES.items():
        if prefix + saved in state_dict:
            state_dict[prefix + name] = state_dict.pop(prefix + saved)


class GPT(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        self.token_embedding = nn.Embedding(config.vocab_size, config.d_model)
        self.position_embedding = POSITIONS[config.pos_encoding](config)
        self.dropout = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        # Post-norm blocks already end in a norm; pre-norm leaves the residual stream unnormalised.
        placement = NORM_PLACEMENTS[config.norm_position]
        self.final_norm = NORMS[config.norm](config) if placement.final_norm else nn.Identity()
        self.head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.apply(self._init_weights)
        if placement.deepnorm:
            self._init_deepnorm_branches()
        else:
            # Residual branches add up over 2·n_layer outputs; scaling keeps the stream's
            # variance flat.
            residual_std = 0.02 / math.sqrt(2 * config.n_layer)
            for block in self.blocks:
                nn.init.normal_(block.attn.proj.weight, mean=0.0, std=residual_std)
                nn.init.normal_(block.mlp.proj.weight, mean=0.0, std=residual_std)
        if config.tie_weights:
            self.head.weight = self.token_embedding.weight
        # The private forms, kept from when torch 2.4 (which has no public ones) was supported.
        self._register_state_dict_hook(_save_under_saved_names)
        self._register_load_state_dict_pre_hook(_load_from_saved_names)

    def _init_deepnorm_branches(self) -> None:
        """DeepNet's init: values, attention output and both MLP matrices at beta·0.02 (q, k
        keep 0.02), as its xavier gains of beta and 1; the residual scale alpha is the block's."""
        std = 0.02 * deepnorm_beta(self.config.n_layer)
        for block in self.blocks:
            value_rows = block.attn.split_sizes[2]
            with torch.no_grad():
                block.attn.qkv.weight[-value_rows:].normal_(mean=0.0, std=std)
            for linear in (block.attn.proj, block.mlp.fc, block.mlp.proj):
                nn.init.normal_(linear.weight, mean=0.0, std=std)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear | nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def embed(self, idx: Tensor, start: int = 0) -> Tensor:
        """Token plus position embeddings of idx (B, T), whose first token sits at `start`."""
        end = start + idx.size(1)
        if self.config.block_size < end:  # with a cache, the cached tokens count too
            raise ValueError(f"sequence length {end} exceeds block_size {self.config.block_size}")
        x = self.token_embedding(idx)  # (B, T, C)
        return self.dropout(self.position_embedding(x, start))

    def forward(
        self, idx: Tensor, targets: Tensor | None = None, cache: KVCache | None = None
    ) -> tuple[Tensor, Tensor | None]:
        """idx (B, T) token ids -> logits (B, T, V), and the mean cross-entropy if targets given.

        With a cache, idx holds only the new tokens: they follow the `cache.length` cached
        positions, attend to them, and their keys and values are added to the cache.
        """
        start = 0 if cache is None else cache.length
        x = self.embed(idx, start)
        positions = self.position_embedding.in_attention(start, idx.size(1))
        for i, block in enumerate(self.blocks):
            x = block(x, positions, None if cache is None else cache.layers[i])
        logits = self.head(self.final_norm(x))
        if targets is None:
            return logits, None
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1))
        return logits, loss

    @torch.no_grad()
    def generate(
        self,
        idx: Tensor,
        sampling: SamplingConfig,
        *,
        stop_token: int | None = None,
        generator: torch.Generator | None = None,
        use_cache: bool = True,
    ) -> Tensor:
        """Extend idx (B, T) by up to `sampling.max_new_tokens` tokens; call `eval()` first.

        Each token is drawn as `sampling` says (temperature, top_k, top_p) from `generator`; the
        prompt, seed and stop character are the text helpers' (`sampling.generate_text`): here
        they are idx, the generator and `stop_token`. The model sees at most block_size tokens.
        Once the sequence outgrows them, `sampling.window` decides what it keeps: "slide"
        (nanoGPT's crop) the last block_size tokens, moving one token a step; "halve" the last
        half of the window, which then fills up again. Generation ends early once every row has
        produced `stop_token` (kept in the output); rows that finished earlier are padded with
        it. `use_cache` keeps each token's keys and values instead of recomputing them: the same
        tokens, faster. A moved window invalidates the cache, whatever the position encoding:
        the kept tokens' keys and values in every layer after the first were computed with the
        dropped tokens in view (and, with added positions, at other positions). So under
        "slide" each token past block_size costs a full recomputation; "halve" refills once per
        half window and stays incremental.
        """
        sampling.check_vocabulary(self.config.vocab_size)
        dtype = self.head.weight.dtype
        cache = KVCache(self.config, idx.size(0), idx.device, dtype) if use_cache else None
        finished = torch.zeros(idx.size(0), 1, dtype=torch.bool, device=idx.device)
        start = max(0, idx.size(1) - self.config.block_size)  # the window's first token
        for _ in range(sampling.max_new_tokens):
            moved = self._window_start(idx.size(1), start, sampling.window)
            if cache is not None and moved != start:
                # Every cached key and value saw tokens the window has dropped: the cache is
                # refilled from the window, as a full recomputation would see it.
                cache.reset()
            start = moved
            logits = self._next_logits(idx[:, start:], cache)
            next_token = sample_next(logits, sampling, generator)
            if stop_token is not None:
                next_token = next_token.masked_fill(finished, stop_token)
                finished |= next_token == stop_token
            idx = torch.cat((idx, next_token), dim=1)
            if stop_token is not None and bool(finished.all()):
                break
        return idx

    def _window_start(self, length: int, start: int, window: str) -> int:
        """Where the window over a sequence of `length` tokens begins, having begun at `start`."""
        block_size = self.config.block_size
        if length - start <= block_size:
            return start
        if window == "slide":
            return length - block_size
        return length - (block_size + 1) // 2

    def _next_logits(self, context: Tensor, cache: KVCache | None) -> Tensor:
        """Logits (B, V) of the token after context (B, T), the tokens the model sees.

        The cache holds the keys and values of the context's first `cache.length` tokens; only
        the rest is run through the model.
        """
        if cache is None:
            return self(context)[0][:, -1]
        return self(context[:, cache.length :], cache=cache)[0][:, -1]
