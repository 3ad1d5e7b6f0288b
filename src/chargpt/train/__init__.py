"""The train command, `chargpt-train` or `python run.py`: a Hydra app around `job.run_job`.

This module imports Hydra and nothing heavy: torch, Lightning and wandb load in `job` once a run
is composed, so `--help`, `--cfg job`, `--info` and a bad override answer in about a second.
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from chargpt.errors import ChargptError
from chargpt.runs.compose import CONF_DIR
from chargpt.runs.resume import resume_arguments


def main() -> None:
    """`chargpt-train [overrides]`: the same Hydra app as `python run.py`, from any directory."""
    try:
        sys.argv[1:] = resume_arguments(sys.argv[1:])
    except ChargptError as error:
        sys.exit(f"error: {error}")
    _hydra_app()


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")
def _hydra_app(cfg: DictConfig) -> float:
    from chargpt.train.job import run_job  # torch and Lightning: only for a run

    return run_job(cfg)
