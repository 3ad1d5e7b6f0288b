"""Train a character-level GPT: `python run.py [overrides]`, or `python run.py -m` for a sweep."""

import hydra
from omegaconf import DictConfig

from chargpt.train import train


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    return train(cfg)


if __name__ == "__main__":
    main()
