"""Hydra callback for sweeps: keep `summary.csv` current and report failed jobs at the end."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from chargpt.records import SUMMARY_FILE, write_sweep_summary


class SweepReport(Callback):
    """At the end of a sweep: rebuild its summary, list jobs that did not finish, exit non-zero.

    Each job refreshes the summary itself when it ends (`chargpt.train.run_job`).
    """

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        records = write_sweep_summary(sweep_dir)
        failed = [record for record in records if record.status != "finished"]
        print(
            f"\nsweep: {len(records) - len(failed)} of {len(records)} jobs finished; "
            f"summary: {sweep_dir / SUMMARY_FILE}; compare: python -m chargpt.compare {sweep_dir}"
        )
        if failed:
            for record in failed:
                print(
                    f"  job {record.job_num} {record.status}: {' '.join(record.overrides)}: "
                    f"{record.error or 'no outcome recorded (killed?)'}",
                    file=sys.stderr,
                )
            sys.exit(1)
