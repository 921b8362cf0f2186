"""Shared fixtures: where the real corpora are, and a cache dir per test session."""

from __future__ import annotations

import gc
import os
import shutil
import signal
from pathlib import Path

# Idle OpenMP threads must not spin: with two test workers on two cores, spinning threads
# of one worker starve the other (measured: a tiny training run took 58 s instead of 1 s).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest

# The tests press Ctrl-C as a terminal would. A suite started in the background (`cmd &` in a
# script, nohup) inherits SIGINT ignored, and so would every midigen it starts, which then
# rightly keeps ignoring it: a handler here (reset to the default in children) undoes that.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

SHARED_CORPORA = Path(__file__).resolve().parents[1].parent / "shared" / "corpora"


@pytest.fixture(scope="session")
def shared_corpora() -> Path:
    """../shared/corpora beside the checkout; tests that need real music skip without it."""
    if not SHARED_CORPORA.is_dir():
        pytest.skip(f"real corpora not found at {SHARED_CORPORA} (../shared/corpora beside the checkout)")
    return SHARED_CORPORA


@pytest.fixture
def started():
    """`started(Popen(...))` keeps the process, and kills it if the test ends with it still
    running: a failed assertion must not leave a training run going on with no parent."""
    processes = []

    def keep(proc):
        processes.append(proc)
        return proc

    yield keep
    for proc in processes:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Keep the token cache of tests out of the user's ~/.cache."""
    monkeypatch.setenv("MIDIGEN_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@pytest.fixture
def fluidsynth():
    """Real audio tests need the fluidsynth program: skipped without it, except in CI."""
    if shutil.which("fluidsynth") is None:
        reason = "FluidSynth not installed (apt-get install fluidsynth fluid-soundfont-gm)"
        if in_ci():
            pytest.fail(f"{reason}; CI must install it")
        pytest.skip(reason)


@pytest.fixture
def chromium() -> tuple[str, str]:
    """(browser, chromedriver) for tests that open pages: skipped without them, except in CI.

    Debian's programs, named explicitly, so Selenium never downloads a browser or driver."""
    browser = next(filter(None, map(shutil.which, ("chromium", "chromium-browser"))), None)
    driver = shutil.which("chromedriver")
    try:
        import selenium  # noqa: F401
    except ImportError:
        driver = None
    if browser and driver:
        return browser, driver
    reason = "no headless browser (apt-get install chromium chromium-driver; pip install selenium)"
    if in_ci():
        pytest.fail(f"{reason}; CI must install them")
    pytest.skip(reason)


def pytest_configure(config):
    """One torch thread per xdist worker, so workers do not oversubscribe the cores."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        torch.set_num_threads(1)


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_sessionfinish(session):
    """In an xdist worker, collect the garbage and freeze the heap before xdist's own wrapper
    reports the worker finished (this innermost wrapper's code runs first).

    Once the last worker reports finished, the controller ends the workers, and execnet sends
    a worker whose session is still running 5 s later a SIGINT. What remains after the report
    is pytest's cleanup, which runs gc.collect() five times: over the ~500,000 objects torch,
    music21 and hypothesis leave, that took 4.3 s on 2 busy cores, so on a busier machine the
    SIGINT landed in it, as a KeyboardInterrupt in hypothesis's gc callback (or anywhere else
    in the cleanup). Frozen, those objects are no longer scanned: the cleanup takes ms."""
    result = yield
    if os.environ.get("PYTEST_XDIST_WORKER"):
        gc.collect()  # garbage now, so unraisable exceptions of finalizers are still reported
        gc.freeze()
    return result


def pytest_collection_modifyitems(config, items):
    """Tests marked `cuda` need a CUDA GPU: skipped with the reason where torch sees none."""
    if not any(item.get_closest_marker("cuda") for item in items):
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (torch.cuda.is_available() is False); "
                                   "run `bench/gpu_check.sh` on a GPU machine")
    for item in items:
        if item.get_closest_marker("cuda"):
            item.add_marker(skip)


@pytest.fixture
def fp32_steps():
    """Training steps in fp32 whatever the CPU: tests that compare two trainings to 1e-5 (DDP
    against one process, micro-batches against one batch) measure summing order, which bf16
    autocast (the default on CPUs with AMX) would drown in its own 1e-3 rounding."""
    from midigen.device import set_precision

    set_precision("fp32")
    yield
    set_precision("auto")
