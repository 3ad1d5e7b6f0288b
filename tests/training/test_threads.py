"""trainer.num_threads: auto shares the CPUs this process may use among a sweep's parallel jobs."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch

from chargpt.errors import SettingError
from chargpt.training import threads
from chargpt.training.threads import parallel_jobs, set_threads, thread_count

JOBLIB = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"
BASIC = {"_target_": "hydra._internal.core_plugins.basic_launcher.BasicLauncher"}
NO_OMP: dict[str, str] = {}

# torch is imported (and has picked its threads) before the mask narrows, as when a launcher pins a
# job late: only set_threads can bring the count down to the one CPU left.
PIN_THEN_SET = textwrap.dedent(
    """
    import os
    import torch
    from chargpt.training.threads import set_threads

    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    set_threads("auto")
    print(torch.get_num_threads())
    """
)


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def joblib(n_jobs: int | None) -> dict:
    return {"_target_": JOBLIB, "n_jobs": n_jobs}


def test_auto_follows_the_affinity_mask(monkeypatch, restore_threads):
    for name in threads.THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(threads, "TORCH_DEFAULT_THREADS", 8)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    assert threads.available_cpus() == 3
    assert set_threads("auto") == 3


def test_auto_takes_no_more_than_torchs_own_count_of_physical_cores(monkeypatch, restore_threads):
    """16 CPUs in the mask on an 8-core machine with hyper-threads: torch's 8, not 16."""
    for name in threads.THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(threads, "TORCH_DEFAULT_THREADS", 2)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)), raising=False)
    assert set_threads("auto") == 2


def test_without_an_affinity_mask_the_cpu_count_is_used(monkeypatch):
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert threads.available_cpus() == 1


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no CPU affinity on this OS")
def test_a_process_pinned_to_one_cpu_gets_one_thread():
    env = {key: value for key, value in os.environ.items() if key != "OMP_NUM_THREADS"}
    child = subprocess.run(
        [sys.executable, "-c", PIN_THEN_SET],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert child.stdout.strip() == "1"


@pytest.mark.parametrize(
    ("n_jobs", "cpus", "expected_threads"),
    [(2, 4, 2), (-1, 4, 1), (-2, 4, 1), (10, 2, 1), (None, 4, 4)],
)
def test_joblib_jobs_share_the_cpus(n_jobs, cpus, expected_threads):
    jobs = parallel_jobs(joblib(n_jobs), cpus)
    assert thread_count("auto", cpus, jobs, environ=NO_OMP) == expected_threads


def test_joblib_minus_one_runs_one_job_per_cpu():
    assert parallel_jobs(joblib(-1), 4) == 4
    assert parallel_jobs(joblib(-2), 4) == 3
    assert parallel_jobs(joblib(-9), 4) == 1


@pytest.mark.parametrize("launcher", [None, {}, BASIC, {"_target_": "SubmititLocalLauncher"}])
def test_other_launchers_run_one_job_at_a_time(launcher):
    assert parallel_jobs(launcher, 8) == 1


def test_a_users_omp_num_threads_is_left_alone():
    assert thread_count("auto", 8, environ={"OMP_NUM_THREADS": "3"}) is None


@pytest.mark.parametrize("variable", ["OMP_NUM_THREADS", "MKL_NUM_THREADS"])
def test_set_threads_keeps_torchs_count_under_a_thread_variable(
    variable, monkeypatch, restore_threads
):
    monkeypatch.setenv(variable, "3")
    monkeypatch.setattr(threads, "TORCH_DEFAULT_THREADS", 8)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    torch.set_num_threads(3)
    assert set_threads("auto", joblib(4)) == 3  # not 8 CPUs // 4 jobs


def test_an_explicit_number_wins(restore_threads):
    assert thread_count(3, 2, jobs=2, environ={"OMP_NUM_THREADS": "1"}) == 3
    assert set_threads(1, joblib(-1)) == 1


@pytest.mark.parametrize("bad", ["x", 0, -1, True, 1.5, None])
def test_bad_values_name_the_setting(bad):
    with pytest.raises(SettingError, match=r"^trainer\.num_threads=.*must be auto or a positive"):
        thread_count(bad, 2, environ=NO_OMP)
