"""Settings that moved to another key: refused under the old name, translated in old run folders.

A user who types an old key gets one line naming the new one. A run folder written before the
move still resumes: `chargpt.runs.resume` replays its overrides under the new keys.
"""

from __future__ import annotations

import re

from omegaconf import DictConfig, OmegaConf

from chargpt.errors import SettingError

# old key -> (new key, why it moved)
RENAMED: dict[str, tuple[str, str]] = {
    "model.compile": (
        "compile",
        "a training setting, not the model's: a run may resume with it on or off",
    ),
    "trainer.val_check_interval": (
        "trainer.val_every_n_steps",
        "it counts optimizer steps; Lightning's val_check_interval, set from it, counts batches",
    ),
}


class RenamedKeyError(SettingError):
    """A setting given under the key it had before it moved."""


def _respelled(override: str) -> tuple[str, str] | None:
    """(old key, `override` written with the new key) when `override` names an old key.

    A `+` or `~` before the key is dropped: the new key is in the config, to be set.
    """
    for old, (new, _) in RENAMED.items():
        match = re.match(rf"(~|\+\+|\+)?{re.escape(old)}(?==|$)", override)
        if match is not None:
            return old, new + override[match.end() :]
    return None


def _message(old: str, advice: str) -> str:
    new, why = RENAMED[old]
    return f"{old} is now {new} ({why}): {advice}"


def check_overrides(overrides: list[str]) -> None:
    """Refuse a command-line override of an old key, naming the new one."""
    for override in overrides:
        if (respelled := _respelled(override)) is not None:
            old, new_override = respelled
            raise RenamedKeyError(_message(old, f"write {new_override}"))


def check_config(cfg: DictConfig) -> None:
    """Refuse a composed config that sets an old key (in conf/local or an experiment file)."""
    for old, (new, _) in RENAMED.items():
        parent, _, leaf = old.rpartition(".")
        node = OmegaConf.select(cfg, parent) if parent else cfg
        if isinstance(node, DictConfig) and leaf in node:
            raise RenamedKeyError(_message(old, f"set {new} instead"))


def translate_overrides(overrides: list[str]) -> list[str]:
    """A run folder's recorded overrides, with every old key written as its new one."""
    return [
        override if (respelled := _respelled(override)) is None else respelled[1]
        for override in overrides
    ]
