"""How OpenMP threads wait is chosen at import, before torch loads, and never over the user."""

from __future__ import annotations

import os
import subprocess
import sys

from midigen import _openmp_wait

PRINT_SETTINGS = ("import midigen, os; "
                  "print(os.environ.get('OMP_WAIT_POLICY'), os.environ.get('GOMP_SPINCOUNT'))")


def _settings_in_fresh_python(**env_changes: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env.update({k: v for k, v in env_changes.items() if v is not None})
    done = subprocess.run([sys.executable, "-c", PRINT_SETTINGS], env=env, capture_output=True, check=False,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_spins_briefly_on_an_idle_machine_and_sleeps_on_a_busy_one():
    spin, sleep = {"GOMP_SPINCOUNT": "30000"}, {"OMP_WAIT_POLICY": "PASSIVE"}
    assert _openmp_wait(other_tasks=0, cpus=2) == spin
    assert _openmp_wait(other_tasks=1, cpus=2) == sleep
    assert _openmp_wait(other_tasks=1, cpus=16) == spin  # one busy core of 16
    assert _openmp_wait(other_tasks=4, cpus=16) == sleep


def test_the_users_own_setting_wins():
    assert _settings_in_fresh_python(OMP_WAIT_POLICY="ACTIVE") == "ACTIVE None"
    assert _settings_in_fresh_python(GOMP_SPINCOUNT="5") == "None 5"


def test_one_policy_is_chosen_when_the_user_sets_none():
    assert _settings_in_fresh_python() in {"PASSIVE None", "None 30000"}
