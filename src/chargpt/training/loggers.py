"""A Weights & Biases logger that runs offline by itself when there are no credentials."""

from __future__ import annotations

import netrc
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from lightning.pytorch.loggers import WandbLogger

WANDB_MODES = ("auto", "online", "offline", "disabled")


def has_wandb_credentials() -> bool:
    """An API key in the environment, or the netrc login that `wandb login` writes."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    netrc_file = os.environ.get("NETRC") or Path.home() / ".netrc"
    try:
        return netrc.netrc(netrc_file).authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def resolve_wandb_mode(mode: str) -> str:
    """`auto` follows WANDB_MODE if set, else goes online only with credentials."""
    if mode not in WANDB_MODES:
        raise ValueError(f"logger.wandb.mode={mode!r}: must be one of {', '.join(WANDB_MODES)}")
    if mode != "auto":
        return mode
    env_mode = os.environ.get("WANDB_MODE")
    if env_mode:
        return "offline" if env_mode == "dryrun" else env_mode
    return "online" if has_wandb_credentials() else "offline"


def wandb_logger(
    save_dir: str,
    project: str = "chargpt",
    name: str | None = None,
    group: str | None = None,
    tags: Sequence[str] = (),
    mode: str = "auto",
    **wandb_init_kwargs: Any,
) -> WandbLogger:
    """Build a `WandbLogger`; extra keyword arguments go to `wandb.init`."""
    Path(save_dir).mkdir(parents=True, exist_ok=True)
    return WandbLogger(
        save_dir=save_dir,
        project=project,
        name=name,
        group=group,
        tags=list(tags),
        mode=resolve_wandb_mode(mode),
        **wandb_init_kwargs,
    )
