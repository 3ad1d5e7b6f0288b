"""chargpt: experiments with character-level GPT language models."""

__version__ = "0.1.0"
