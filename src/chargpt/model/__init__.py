"""The GPT model in plain PyTorch: no Lightning, no Hydra."""

from chargpt.model.config import ConfigError, GPTConfig
from chargpt.model.gpt import GPT
from chargpt.model.kv_cache import KVCache

__all__ = ["GPT", "ConfigError", "GPTConfig", "KVCache"]
