"""`GPTConfig`: every architectural choice of the model, validated when created."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from chargpt.errors import SettingError

NORMS = ("layernorm", "rmsnorm")
NORM_POSITIONS = ("pre", "post", "peri", "deepnorm")
MLPS = ("gelu", "swiglu", "relu2")
POS_ENCODINGS = ("learned", "sinusoidal", "rope", "alibi", "none")


class ConfigError(SettingError):
    """An invalid model setting; the message names the key, the value and what is allowed."""


@dataclass(frozen=True)
class GPTConfig:
    vocab_size: int
    block_size: int = 64
    n_layer: int = 4
    n_head: int = 8
    d_model: int = 128
    n_kv_head: int | None = None  # grouped-query attention; None: n_head (multi-head)
    mlp_ratio: float = 4.0
    dropout: float = 0.0
    bias: bool = True
    norm: str = "layernorm"
    norm_position: str = "pre"
    mlp: str = "gelu"
    pos_encoding: str = "learned"
    tie_weights: bool = True
    qk_norm: bool = False

    def __post_init__(self) -> None:
        for key in ("vocab_size", "block_size", "n_layer", "n_head", "d_model"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigError(f"model.{key}={value!r}: must be a positive integer")
        if self.d_model % self.n_head != 0:
            raise ConfigError(
                f"model.d_model={self.d_model} is not divisible by model.n_head={self.n_head}: "
                "choose n_head among the divisors of d_model"
            )
        self._check_kv_heads()
        for key in ("mlp_ratio", "dropout"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"model.{key}={value!r}: must be a number")
        if not self.mlp_ratio > 0:
            raise ConfigError(f"model.mlp_ratio={self.mlp_ratio!r}: must be > 0")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"model.dropout={self.dropout!r}: must be in [0, 1)")
        _check_choice("norm", self.norm, NORMS)
        _check_choice("norm_position", self.norm_position, NORM_POSITIONS)
        _check_choice("mlp", self.mlp, MLPS)
        _check_choice("pos_encoding", self.pos_encoding, POS_ENCODINGS)
        for key in ("bias", "tie_weights", "qk_norm"):
            if not isinstance(getattr(self, key), bool):
                raise ConfigError(f"model.{key}={getattr(self, key)!r}: must be true or false")
        if self.pos_encoding == "rope" and self.head_size % 2:
            raise ConfigError(
                f"model.pos_encoding=rope rotates pairs of channels, but the head size "
                f"d_model/n_head={self.d_model}/{self.n_head}={self.head_size} is odd: "
                "choose n_head so that d_model/n_head is even"
            )

    def _check_kv_heads(self) -> None:
        value = self.n_kv_head
        if value is None:
            return
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ConfigError(
                f"model.n_kv_head={value!r}: must be a positive integer, or null for n_head"
            )
        if self.n_head % value:
            divisors = [d for d in range(1, self.n_head + 1) if self.n_head % d == 0]
            raise ConfigError(
                f"model.n_kv_head={value} does not divide model.n_head={self.n_head}: choose one "
                f"of {', '.join(map(str, divisors))}"
            )

    @property
    def kv_heads(self) -> int:
        """Heads of keys and values: n_kv_head, or n_head when unset."""
        return self.n_head if self.n_kv_head is None else self.n_kv_head

    @property
    def head_size(self) -> int:
        return self.d_model // self.n_head

    @property
    def mlp_hidden(self) -> int:
        """Hidden width of the MLP.

        SwiGLU has three matrices instead of two, so its width is scaled by 2/3 to keep the
        parameter count of the GELU MLP (8/3·d_model at ratio 4), rounded up to a multiple of 8.
        """
        width = self.mlp_ratio * self.d_model
        if self.mlp == "swiglu":
            return 8 * -(-round(2 * width / 3) // 8)
        return round(width)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check_choice(key: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"model.{key}={value!r}: must be one of {', '.join(allowed)}")
