"""The GPT model in plain PyTorch: no Lightning, no Hydra."""

from chargpt.model.config import ConfigError, GPTConfig
from chargpt.model.gpt import GPT, Internals

__all__ = ["GPT", "ConfigError", "GPTConfig", "Internals"]
