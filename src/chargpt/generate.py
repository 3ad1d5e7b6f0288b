"""Text in, text out: sampling from a model with its tokenizer (plain PyTorch)."""

from __future__ import annotations

import torch

from chargpt.data.tokenizer import CharTokenizer
from chargpt.model import GPT


def generate_text(
    model: GPT,
    tokenizer: CharTokenizer,
    prompt: str,
    max_new_tokens: int,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    stop: str | None = None,
    seed: int = 0,
    num_samples: int = 1,
    window: str = "slide",
) -> list[str]:
    """`num_samples` continuations of `prompt`, each ending at its first `stop` character if set.

    The model must be in eval mode; the same seed gives the same texts. `window` is what the
    model keeps of a sequence longer than its block_size (see `GPT.generate`).
    """
    if not prompt:
        raise ValueError("prompt is empty: give at least one character (the default is a newline)")
    if stop is not None and len(stop) != 1:
        raise ValueError(f"stop={stop!r}: must be a single character")
    device = next(model.parameters()).device
    idx = torch.tensor([tokenizer.encode(prompt)] * num_samples, device=device)
    stop_token = None if stop is None else tokenizer.encode(stop)[0]
    out = model.generate(
        idx,
        max_new_tokens,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        stop_token=stop_token,
        generator=torch.Generator(device=device).manual_seed(seed),
        window=window,
    )
    texts = [tokenizer.decode(row.tolist()) for row in out]
    if stop is None:
        return texts
    # Rows that stopped before the others are padded with the stop character: cut after the first.
    return [text[: text.find(stop, len(prompt)) + 1] or text for text in texts]
