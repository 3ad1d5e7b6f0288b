"""`trainer.num_threads`: how many CPU threads torch uses for one run.

torch takes one thread per physical core it sees when it starts. On a shared 2-core machine where
another process holds one core, the two threads of every step wait on each other; a process whose
CPU set narrows later (taskset, a scheduler) keeps the count it started with; and each job of a
parallel sweep takes every core, so together the jobs oversubscribe them. "auto" takes the CPUs
this process may use now (its affinity mask), at most torch's own count (physical cores, not
hyper-threads), shared among the jobs that run at once; a number, or an `OMP_NUM_THREADS` or
`MKL_NUM_THREADS` the user (or joblib, in its workers) set, wins.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import torch

from chargpt.errors import SettingError

THREADS_KEY = "trainer.num_threads"
AUTO = "auto"
# Variables that set torch's threads when it starts (it reads MKL_NUM_THREADS first).
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
# torch's count before anything here changed it: one per physical core it saw at import.
TORCH_DEFAULT_THREADS = torch.get_num_threads()


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity mask, where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def parallel_jobs(launcher: Mapping | None, cpus: int) -> int:
    """How many jobs of a sweep share this machine's CPUs at once, from Hydra's launcher config."""
    target = str((launcher or {}).get("_target_", ""))
    # Basic runs one job at a time; submitit gives each job its own CPUs, seen in its affinity mask.
    if "JoblibLauncher" not in target:
        return 1
    jobs = launcher.get("n_jobs")
    if jobs is None:
        return 1
    if jobs < 0:  # joblib's convention: -1 is one job per CPU, -2 all but one, and so on
        jobs = cpus + 1 + jobs
    return max(1, jobs)


def thread_count(
    setting: object, cpus: int, jobs: int = 1, environ: Mapping[str, str] = os.environ
) -> int | None:
    """The thread count to set, or None to keep torch's own (a thread variable is set).

    `cpus` is the CPUs to share: the affinity mask, capped at torch's own count."""
    if setting == AUTO:
        if any(name in environ for name in THREAD_VARIABLES):
            return None
        return max(1, cpus // jobs)
    # bool is an int to Python, but `num_threads=true` is a mistake, not one thread.
    if isinstance(setting, int) and not isinstance(setting, bool) and setting > 0:
        return setting
    raise SettingError(
        f"{THREADS_KEY}={setting!r}: must be {AUTO} or a positive whole number of threads"
    )


def set_threads(setting: object, launcher: Mapping | None = None) -> int:
    """Apply the setting to torch; returns the thread count torch then uses."""
    cpus = min(available_cpus(), TORCH_DEFAULT_THREADS)
    count = thread_count(setting, cpus, parallel_jobs(launcher, cpus))
    if count is not None:
        torch.set_num_threads(count)
    return torch.get_num_threads()
