"""A GPT language model in plain PyTorch, read top to bottom: norms, attention, MLP, block,
positions, GPT. Each variant a `GPTConfig` string names is a class in the dictionary beside it.

Shapes: B batch, T time (sequence), C channels (d_model), nh heads, hs head size, V vocabulary.
"""

from __future__ import annotations

import math

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


def attend(q: Tensor, k: Tensor, v: Tensor, dropout: float = 0.0) -> Tensor:
    """Causal attention of T queries, the last T of the S positions in k, v; (B, nh, T, hs).

    bf16 on a CPU is attended in fp32: PyTorch's CPU flash-attention backward ran 4-10x slower
    in bf16 than in fp32 (2.13, AVX512-BF16), which made bf16 autocast slower than fp32 for the
    whole step; q, k and v are small, so the casts cost little (benchmarks/README.md).
    """
    if q.dtype == torch.bfloat16 and q.device.type == "cpu":
        with torch.autocast("cpu", enabled=False):
            return _causal_attention(q.float(), k.float(), v.float(), dropout).to(q.dtype)
    return _causal_attention(q, k, v, dropout)


def _causal_attention(q: Tensor, k: Tensor, v: Tensor, dropout: float) -> Tensor:
    T, S = q.size(2), k.size(2)
    if T == 1:  # one new token: everything cached lies in its past
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout)
    if T == S:  # no cache, or a prefill into an empty one
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=True)
    # SDPA's is_causal aligns the mask to the top left; query i sits at position S - T + i.
    mask = torch.ones(T, S, dtype=torch.bool, device=q.device).tril(diagonal=S - T)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout)


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.n_head = config.n_head
        self.dropout = config.dropout
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model, bias=config.bias)
        self.proj = nn.Linear(config.d_model, config.d_model, bias=config.bias)
        self.resid_dropout = nn.Dropout(config.dropout)

    def heads(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Queries, keys and values of x (B, T, C), split into heads: (B, nh, T, hs) each."""
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        # (B, T, C) -> (B, nh, T, hs)
        return tuple(t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))

    def forward(self, x: Tensor, cache: LayerKVCache | None = None) -> Tensor:
        B, T, C = x.shape
        q, k, v = self.heads(x)
        if cache is not None:
            k, v = cache.append(k, v)  # (B, nh, cached + T, hs)
        y = attend(q, k, v, dropout=self.dropout if self.training else 0.0)
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


MLPS: dict[str, type[nn.Module]] = {"gelu": GeluMLP, "swiglu": SwiGLUMLP}


class Block(nn.Module):
    """One transformer layer, with the norm before (pre) or after (post) each residual branch.

    pre:  x = x + attn(norm1(x));  x = x + mlp(norm2(x))     (GPT-2; needs a final norm)
    post: x = norm1(x + attn(x));  x = norm2(x + mlp(x))     (the original Transformer)
    """

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.pre_norm = config.norm_position == "pre"
        self.norm1 = NORMS[config.norm](config)
        self.attn = CausalSelfAttention(config)
        self.norm2 = NORMS[config.norm](config)
        self.mlp = MLPS[config.mlp](config)

    def forward(self, x: Tensor, cache: LayerKVCache | None = None) -> Tensor:
        if self.pre_norm:
            x = x + self.attn(self.norm1(x), cache)
            return x + self.mlp(self.norm2(x))
        x = self.norm1(x + self.attn(x, cache))
        return self.norm2(x + self.mlp(x))


def sinusoidal_positions(block_size: int, d_model: int) -> Tensor:
    """The fixed sin/cos position table of "Attention Is All You Need", (T, C)."""
    position = torch.arange(block_size).unsqueeze(1)
    frequency = torch.exp(torch.arange(0, d_model, 2) * (-math.log(10000.0) / d_model))
    table = torch.zeros(block_size, d_model)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency[: d_model // 2])
    return table


class LearnedPositions(nn.Embedding):
    """A trained vector per position, added to the token embeddings."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__(config.block_size, config.d_model)

    def forward(self, x: Tensor, start: int) -> Tensor:
        """x (B, T, C), token embeddings whose first token sits at `start`, plus positions."""
        return x + super().forward(torch.arange(start, start + x.size(1), device=x.device))


class SinusoidalPositions(nn.Module):
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


POSITIONS: dict[str, type[nn.Module]] = {
    "learned": LearnedPositions,
    "sinusoidal": SinusoidalPositions,
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
        self.final_norm = (
            NORMS[config.norm](config) if config.norm_position == "pre" else nn.Identity()
        )
        self.head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.apply(self._init_weights)
        # Residual branches add up over 2·n_layer outputs; scaling keeps the stream's variance flat.
        residual_std = 0.02 / math.sqrt(2 * config.n_layer)
        for block in self.blocks:
            nn.init.normal_(block.attn.proj.weight, mean=0.0, std=residual_std)
            nn.init.normal_(block.mlp.proj.weight, mean=0.0, std=residual_std)
        if config.tie_weights:
            self.head.weight = self.token_embedding.weight
        # The private forms: torch 2.4, the oldest this project supports, has no public ones.
        self._register_state_dict_hook(_save_under_saved_names)
        self._register_load_state_dict_pre_hook(_load_from_saved_names)

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
        for i, block in enumerate(self.blocks):
            x = block(x, None if cache is None else cache.layers[i])
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
        tokens, faster. With absolute positions a moved window invalidates the cache, so under
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
                # With absolute positions every kept token now sits at another position, so
                # every cached key and value is stale: the cache is refilled from the window.
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
