"""The run config outside a run: conf/train.yaml composed with `run.py`-style overrides.

For tools that build what `run.py` builds (the benchmark, the tests) without launching Hydra.
"""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

# src/chargpt/runs/compose.py -> the project folder, which holds conf/.
CONF_DIR = Path(__file__).resolve().parents[3] / "conf"


def compose_config(overrides: list[str], output_dir: str | Path) -> DictConfig:
    """conf/train.yaml with `run.py`-style overrides; run outputs (if any) go to `output_dir`."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)  # resolves ${hydra:...} as in a real run
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
        del cfg.hydra
    return cfg
