"""Where midigen keeps things, in one place: run folders, the built-in corpus, the token cache.

`checkpoints/` and `corpora/` are relative to the current folder, as a project's outputs are;
MIDIGEN_CHECKPOINTS and MIDIGEN_CORPORA move them (commands also take options: `train
--run-dir`, `sample -c`). The token cache is per user: MIDIGEN_CACHE, else ~/.cache/midigen.
Read at each call, so a changed environment (a test, a long-lived process) is honoured.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

CHECKPOINTS_ENV = "MIDIGEN_CHECKPOINTS"
CORPORA_ENV = "MIDIGEN_CORPORA"
CACHE_ENV = "MIDIGEN_CACHE"
BUILTIN_CORPUS_NAME = "bach-chorales"


def checkpoints_dir() -> Path:
    """The folder that holds run folders: $MIDIGEN_CHECKPOINTS, else ./checkpoints."""
    return Path(os.environ.get(CHECKPOINTS_ENV) or "checkpoints")


def corpora_dir() -> Path:
    """The folder that holds built corpora: $MIDIGEN_CORPORA, else ./corpora."""
    return Path(os.environ.get(CORPORA_ENV) or "corpora")


def builtin_corpus_dir() -> Path:
    """Where the built-in Bach chorales are written as MIDI (once)."""
    return corpora_dir() / BUILTIN_CORPUS_NAME


def cache_dir() -> Path:
    """The per-user token cache: $MIDIGEN_CACHE, else ~/.cache/midigen."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "midigen")


def new_run_dir(corpus_name: str) -> Path:
    """A fresh run folder named by its start time and corpus: checkpoints/20261123-101500-folk."""
    return checkpoints_dir() / f"{time.strftime('%Y%m%d-%H%M%S')}-{corpus_name}"
