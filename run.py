"""Train a character-level GPT: `python run.py [overrides]`, or `python run.py -m` for a sweep."""

import sys

import hydra
from omegaconf import DictConfig

from chargpt.errors import ChargptError
from chargpt.runs.resume import resume_arguments
from chargpt.train import run_job


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float:
    return run_job(cfg)


if __name__ == "__main__":
    try:
        sys.argv[1:] = resume_arguments(sys.argv[1:])
    except ChargptError as error:
        sys.exit(f"error: {error}")
    main()
