"""The report folder replaced whole or not at all: built beside OUT, then swapped in."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from midigen.errors import MidigenError
from midigen.fileio import write_error

MARKER = ".midigen-report"  # a folder holding this file is a report midigen may replace


def staging_dir(out_dir: Path, force: bool) -> Path:
    """A fresh folder beside OUT to build in; checks first that OUT may be (re)placed."""
    if out_dir.exists():
        if not out_dir.is_dir():
            raise MidigenError(f"{out_dir} exists and is not a folder")
        if any(out_dir.iterdir()):
            if not (out_dir / MARKER).is_file():
                raise MidigenError(f"{out_dir} already holds files that are not a midigen "
                                   "report; choose another --out")
            if not force:
                raise MidigenError(f"{out_dir} already holds a report; pass --force to "
                                   "replace it")
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
        umask = os.umask(0o022)
        os.umask(umask)
        staging.chmod(0o777 & ~umask)  # mkdtemp's 0700 would hide the page from others
        return staging
    except OSError as e:
        raise write_error(out_dir, e) from None


def swap_in(staging: Path, out_dir: Path) -> None:
    """Put the finished report where OUT was, so a failure never leaves half a report."""
    old = None
    if out_dir.exists():
        old = out_dir.with_name(f".{out_dir.name}-old-{os.getpid()}")
        os.replace(out_dir, old)
    os.replace(staging, out_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
