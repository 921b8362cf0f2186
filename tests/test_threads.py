"""The thread policy: importing midigen changes nothing; the `midigen` command chooses how
OpenMP threads wait before torch loads, never over the user's own setting."""

from __future__ import annotations

import os
import subprocess
import sys

from midigen.threads import openmp_wait

SETTINGS = "print(os.environ.get('OMP_WAIT_POLICY'), os.environ.get('GOMP_SPINCOUNT'))"
# The entry point with OTHERS tasks running beside it: torch loaded yet? then the settings.
AS_THE_COMMAND = ("import os, sys; import midigen.cli as cli, midigen.threads as t; "
                  "t.other_running_tasks = lambda: OTHERS; "
                  "cli.app = lambda: print('torch' in sys.modules); cli.main(); " + SETTINGS)
AS_A_LIBRARY = ("import os, torch; n = torch.get_num_threads(); import midigen, midigen.train, "
                "midigen.sample; assert torch.get_num_threads() == n; " + SETTINGS)


def _fresh_python(code: str, **env_changes: str | None) -> str:
    env = {k: v for k, v in os.environ.items()
           if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_NUM_THREADS")}
    env.update({k: v for k, v in env_changes.items() if v is not None})
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          check=False, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_spins_briefly_on_an_idle_machine_and_sleeps_on_a_busy_one():
    spin, sleep = {"GOMP_SPINCOUNT": "30000"}, {"OMP_WAIT_POLICY": "PASSIVE"}
    assert openmp_wait(other_tasks=0, cpus=2) == spin
    assert openmp_wait(other_tasks=1, cpus=2) == sleep
    assert openmp_wait(other_tasks=1, cpus=16) == spin  # one busy core of 16
    assert openmp_wait(other_tasks=4, cpus=16) == sleep


def as_the_command(others: int) -> str:
    return AS_THE_COMMAND.replace("OTHERS", str(others))


def test_the_command_chooses_a_policy_before_torch_loads():
    assert _fresh_python(as_the_command(0)).split("\n") == ["False", "None 30000"]
    busy = 1 + (os.cpu_count() or 1)  # more tasks than cores: sleep, whatever the machine
    assert _fresh_python(as_the_command(busy)).split("\n") == ["False", "PASSIVE None"]


def test_the_users_own_setting_wins():
    assert _fresh_python(as_the_command(0), OMP_WAIT_POLICY="ACTIVE").endswith("ACTIVE None")
    assert _fresh_python(as_the_command(0), GOMP_SPINCOUNT="5").endswith("None 5")


def test_importing_midigen_changes_nothing_in_the_process():
    assert _fresh_python(AS_A_LIBRARY) == "None None"


def test_all_cores_unless_the_user_set_omp_num_threads():
    code = ("import os, torch; from midigen.threads import use_all_cores; "
            "print(use_all_cores(), len(os.sched_getaffinity(0)))")
    mine, cores = _fresh_python(code, OMP_NUM_THREADS="1").split()
    assert mine == "1"
    theirs, cores = _fresh_python(code, OMP_NUM_THREADS=None).split()
    assert theirs == cores
