"""A GPT language model in plain PyTorch, read top to bottom: norms, KV cache, attention, MLP,
block, GPT.

Shapes: B batch, T time (sequence), C channels (d_model), nh heads, hs head size, V vocabulary.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from chargpt.errors import SettingError
from chargpt.model.config import GPTConfig
from chargpt.model.sampling import check_sampling_args, sample_next

# What generation keeps once the sequence outgrows block_size (see GPT.generate).
WINDOWS = ("slide", "halve")


def make_norm(config: GPTConfig) -> nn.Module:
    if config.norm == "rmsnorm":
        return nn.RMSNorm(config.d_model)
    return nn.LayerNorm(config.d_model, bias=config.bias)


class LayerKVCache:
    """One layer's keys and values for incremental decoding, room for block_size positions."""

    def __init__(self, keys: Tensor, values: Tensor) -> None:
        self.keys, self.values = keys, values  # (B, nh, block_size, hs) each
        self.length = 0  # positions filled so far

    def append(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Store k, v (B, nh, T, hs) after the filled positions; return all keys and values."""
        start, end = self.length, self.length + k.size(2)
        self.keys[:, :, start:end] = k
        self.values[:, :, start:end] = v
        self.length = end
        return self.keys[:, :, :end], self.values[:, :, :end]  # (B, nh, end, hs)


class KVCache:
    """Every layer's keys and values: what `GPT.forward(idx, cache=...)` reads and extends.

    The new tokens of each call take the positions after those already cached, so a prompt can
    be fed at once (prefill) and the tokens after it one at a time.
    """

    def __init__(
        self,
        config: GPTConfig,
        batch_size: int,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        shape = (batch_size, config.n_head, config.block_size, config.head_size)
        self.layers = [
            LayerKVCache(
                torch.empty(shape, device=device, dtype=dtype),
                torch.empty(shape, device=device, dtype=dtype),
            )
            for _ in range(config.n_layer)
        ]

    @property
    def length(self) -> int:
        return self.layers[0].length

    def reset(self) -> None:
        """Forget every cached position (the memory is kept and overwritten)."""
        for layer in self.layers:
            layer.length = 0


def attend(q: Tensor, k: Tensor, v: Tensor, dropout: float = 0.0) -> Tensor:
    """Causal attention of T queries, the last T of the S positions in k, v; (B, nh, T, hs)."""
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

    def _heads(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        # (B, T, C) -> (B, nh, T, hs)
        return tuple(t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))

    def forward(self, x: Tensor, cache: LayerKVCache | None = None) -> Tensor:
        B, T, C = x.shape
        q, k, v = self._heads(x)
        if cache is not None:
            k, v = cache.append(k, v)  # (B, nh, cached + T, hs)
        y = attend(q, k, v, dropout=self.dropout if self.training else 0.0)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, nh, T, hs) -> (B, T, C)
        return self.resid_dropout(self.proj(y))

    def attention_weights(self, x: Tensor) -> Tensor:
        """The causal attention pattern (B, nh, T, T) that `forward` applies, for analysis."""
        T = x.size(1)
        q, k, _ = self._heads(x)
        scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))  # (B, nh, T, T)
        future = torch.ones(T, T, dtype=torch.bool, device=x.device).triu(1)
        return scores.masked_fill(future, float("-inf")).softmax(dim=-1)


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


MLP_TYPES: dict[str, type[nn.Module]] = {"gelu": GeluMLP, "swiglu": SwiGLUMLP}


class Block(nn.Module):
    """One transformer layer, with the norm before (pre) or after (post) each residual branch.

    pre:  x = x + attn(norm1(x));  x = x + mlp(norm2(x))     (GPT-2; needs a final norm)
    post: x = norm1(x + attn(x));  x = norm2(x + mlp(x))     (the original Transformer)
    """

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.pre_norm = config.norm_position == "pre"
        self.norm1 = make_norm(config)
        self.attn = CausalSelfAttention(config)
        self.norm2 = make_norm(config)
        self.mlp = MLP_TYPES[config.mlp](config)

    def forward(self, x: Tensor, cache: LayerKVCache | None = None) -> Tensor:
        if self.pre_norm:
            x = x + self.attn(self.norm1(x), cache)
            return x + self.mlp(self.norm2(x))
        x = self.norm1(x + self.attn(x, cache))
        return self.norm2(x + self.mlp(x))

    def attention_input(self, x: Tensor) -> Tensor:
        return self.norm1(x) if self.pre_norm else x


def sinusoidal_positions(block_size: int, d_model: int) -> Tensor:
    """The fixed sin/cos position table of "Attention Is All You Need", (T, C)."""
    position = torch.arange(block_size).unsqueeze(1)
    frequency = torch.exp(torch.arange(0, d_model, 2) * (-math.log(10000.0) / d_model))
    table = torch.zeros(block_size, d_model)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency[: d_model // 2])
    return table


@dataclass
class Internals:
    """What `GPT.inspect` returns: logits and, per layer, hidden states and attention patterns."""

    logits: Tensor  # (B, T, V)
    hidden_states: list[Tensor]  # n_layer + 1 tensors (B, T, C): the embeddings, then each block
    attentions: list[Tensor]  # n_layer tensors (B, nh, T, T)


class GPT(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        self.token_embedding = nn.Embedding(config.vocab_size, config.d_model)
        if config.pos_encoding == "learned":
            self.position_embedding = nn.Embedding(config.block_size, config.d_model)
        else:
            # A buffer, not a parameter: fixed, yet it moves with .to(device) and is saved.
            self.register_buffer(
                "position_table", sinusoidal_positions(config.block_size, config.d_model)
            )
        self.dropout = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        # Post-norm blocks already end in a norm; pre-norm leaves the residual stream unnormalised.
        self.final_norm = make_norm(config) if config.norm_position == "pre" else nn.Identity()
        self.head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.apply(self._init_weights)
        # Residual branches add up over 2·n_layer outputs; scaling keeps the stream's variance flat.
        residual_std = 0.02 / math.sqrt(2 * config.n_layer)
        for block in self.blocks:
            nn.init.normal_(block.attn.proj.weight, mean=0.0, std=residual_std)
            nn.init.normal_(block.mlp.proj.weight, mean=0.0, std=residual_std)
        if config.tie_weights:
            self.head.weight = self.token_embedding.weight

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
        if self.config.pos_encoding == "learned":
            x = x + self.position_embedding(torch.arange(start, end, device=idx.device))
        else:
            # The fixed table has unit-scale entries; without the sqrt(d_model) scaling of
            # "Attention Is All You Need" it would drown the 0.02-scale token embeddings.
            x = x * math.sqrt(self.config.d_model) + self.position_table[start:end]
        return self.dropout(x)

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
    def inspect(self, idx: Tensor) -> Internals:
        """Run the model and keep every layer's hidden state and attention pattern.

        Call `eval()` first: the attention patterns are computed without dropout.
        """
        x = self.embed(idx)
        hidden_states, attentions = [x], []
        for block in self.blocks:
            attentions.append(block.attn.attention_weights(block.attention_input(x)))
            x = block(x)
            hidden_states.append(x)
        return Internals(self.head(self.final_norm(x)), hidden_states, attentions)

    def num_parameters(self) -> int:
        """Trainable parameters; a tied embedding/head matrix counts once."""
        return sum(p.numel() for p in self.parameters())

    def parameter_breakdown(self) -> dict[str, int]:
        """Parameters per component; they add up to `num_parameters()` (a tied head counts 0)."""
        components = {
            "token_embedding": 0,
            "position_embedding": 0,
            "attention": 0,
            "mlp": 0,
            "norms": 0,
            "head": 0,
        }
        for name, p in self.named_parameters():  # shared parameters are listed once
            components[_component_of(name)] += p.numel()
        return components

    @torch.no_grad()
    def generate(
        self,
        idx: Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        stop_token: int | None = None,
        generator: torch.Generator | None = None,
        use_cache: bool = True,
        window: str = "slide",
    ) -> Tensor:
        """Extend idx (B, T) by up to max_new_tokens sampled tokens; call `eval()` first.

        The model sees at most block_size tokens. Once the sequence outgrows them, `window`
        decides what it keeps: "slide" (nanoGPT's crop) the last block_size tokens, moving one
        token a step; "halve" the last half of the window, which then fills up again. Generation
        ends early once every row has produced `stop_token` (kept in the output); rows that
        finished earlier are padded with it. `use_cache` keeps each token's keys and values
        instead of recomputing them: the same tokens, faster. With absolute positions a moved
        window invalidates the cache, so under "slide" each token past block_size costs a full
        recomputation; "halve" refills once per half window and stays incremental.
        """
        if max_new_tokens < 0:
            raise SettingError(f"max_new_tokens={max_new_tokens}: must be >= 0")
        if window not in WINDOWS:
            raise SettingError(f"window={window!r}: must be one of {', '.join(WINDOWS)}")
        check_sampling_args(self.config.vocab_size, temperature, top_k, top_p)
        dtype = self.head.weight.dtype
        cache = KVCache(self.config, idx.size(0), idx.device, dtype) if use_cache else None
        finished = torch.zeros(idx.size(0), 1, dtype=torch.bool, device=idx.device)
        start = max(0, idx.size(1) - self.config.block_size)  # the window's first token
        for _ in range(max_new_tokens):
            moved = self._window_start(idx.size(1), start, window)
            if cache is not None and moved != start:
                # With absolute positions every kept token now sits at another position, so
                # every cached key and value is stale: the cache is refilled from the window.
                cache.reset()
            start = moved
            logits = self._next_logits(idx[:, start:], cache)
            next_token = sample_next(logits, temperature, top_k, top_p, generator)
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


def _component_of(parameter_name: str) -> str:
    if parameter_name.startswith("token_embedding"):
        return "token_embedding"
    if parameter_name.startswith("position_embedding"):
        return "position_embedding"
    if parameter_name.startswith("head"):
        return "head"
    if ".attn." in parameter_name:
        return "attention"
    if ".mlp." in parameter_name:
        return "mlp"
    return "norms"
