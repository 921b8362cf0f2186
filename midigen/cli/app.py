"""The Typer app every command registers on, and the one place errors become exit codes.

Library code raises MidigenError; here it becomes one red line on stderr and exit code 1,
so no command ever shows a traceback to a musician (MIDIGEN_DEBUG=1 shows it for us).
Exit codes (documented in the README): 0 done, 1 a problem with the input (a clear line
says which), 2 a usage error (click's), 70 an internal error (a bug: please report it),
128 + signal when a signal stopped it (130 for Ctrl-C).
"""

from __future__ import annotations

import inspect
import json
import math
import os
import signal
import sys
from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from midigen.errors import MidigenError
from midigen.fileio import disk_reason, is_disk_error
from midigen.stopping import Stopped, exit_code, raising_on_stop_signals

EXIT_ERROR = 1  # bad input, a missing file, a bad checkpoint: the message says what to do
EXIT_USAGE = 2  # a bad flag or value, as click reports it
EXIT_INTERNAL = 70  # a bug in midigen (EX_SOFTWARE in sysexits.h)
# A stop signal exits 128 + its number (130 Ctrl-C, 143 SIGTERM, 129 SIGHUP): midigen.stopping.

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def reflow_help(typer_app: typer.Typer) -> None:
    """Join each docstring paragraph into one line, so the help wraps to the terminal's width.

    Typer's rich mode keeps a docstring's line breaks inside a paragraph, which reads as ragged
    lines on any terminal wider or narrower than the source.
    """
    for command in typer_app.registered_commands:
        doc = command.help or inspect.getdoc(command.callback) or ""
        command.help = "\n\n".join(" ".join(part.split()) for part in doc.split("\n\n"))


def fail(message: str, code: int = EXIT_ERROR) -> NoReturn:
    """Print one error line and leave with a non-zero exit code."""
    err.print(f"[bold red]error:[/] {escape(message)}")
    raise typer.Exit(code)


def check_writable(path, force: bool) -> None:
    """Stop with one line when `path` exists (without --force) or its folder is missing."""
    if path.exists() and not force:
        fail(f"{path} already exists (use --force to overwrite)")
    if path.parent and not path.parent.exists():
        fail(f"folder {path.parent} does not exist")


def fmt_number(value, digits: int = 3) -> str:
    """A table cell: "-" for None, thousands separators, `digits` decimals for floats."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def print_note(line: str) -> None:
    """A one-line note on stderr (what was repaired or skipped on the way), not an error."""
    err.print(f"note: {line}", markup=False, highlight=False)


def print_json(obj) -> None:
    """Print one JSON object on stdout, for scripts (`--json`); NaN and infinity become null
    (bare NaN is not JSON, and strict parsers reject the whole object)."""
    sys.stdout.write(json.dumps(_finite(obj), indent=2, default=str, allow_nan=False) + "\n")
    sys.stdout.flush()


def _finite(obj):
    if hasattr(obj, "item") and getattr(obj, "ndim", None) == 0:  # numpy scalars
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


class ProgressBar:
    """A rich progress bar on stderr, started on the first report (so after workers fork).

    Call it as `bar(done, total)`; use it as a context manager so it always stops. Silent
    when disabled (not a terminal, or --json).
    """

    def __init__(self, label: str, enabled: bool = True):
        self.label, self.enabled, self.progress, self.task = label, enabled, None, None

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        if self.progress is None:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            self.progress = Progress(TextColumn(self.label), BarColumn(), MofNCompleteColumn(),
                                     TimeRemainingColumn(), console=err, transient=True)
            self.progress.start()
            self.task = self.progress.add_task(self.label, total=total)
        self.progress.update(self.task, completed=done, total=total)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.progress is not None:
            self.progress.stop()


# Usage errors belong to click, which newer Typer versions bundle as their own copy.
_CLICK_ERRORS = tuple(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")


class _ErrorsAsLines(TyperGroup):
    def invoke(self, ctx):
        try:
            with raising_on_stop_signals():
                return super().invoke(ctx)
        except MidigenError as e:
            fail(str(e))
        except Stopped as e:
            fail(f"stopped by {e}", e.exit_code)
        except KeyboardInterrupt:
            fail("interrupted", exit_code(signal.SIGINT))
        except BrokenPipeError:  # `midigen ... | head` closed the pipe: stop quietly, like `cat`
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise typer.Exit(exit_code(signal.SIGPIPE)) from None
        except (typer.Exit, typer.Abort, SystemExit, *_CLICK_ERRORS):
            raise
        except Exception as e:
            if os.environ.get("MIDIGEN_DEBUG"):
                raise
            if is_disk_error(e):  # a write outside midigen.fileio hit a full or read-only disk
                fail(f"{e.filename or 'a file'}: {disk_reason(e)}")
            fail(f"internal error ({type(e).__name__}: {e}); rerun with MIDIGEN_DEBUG=1 "
                 "for details", EXIT_INTERNAL)


app = typer.Typer(
    cls=_ErrorsAsLines,
    help="midigen: point it at a folder of music, get new music out.\n\n"
    "Scores (MIDI, MusicXML, kern, ABC) become lines of event symbols; a stacked LSTM learns "
    "them and writes new MIDI. With no corpus given, the Bach chorales bundled with music21 "
    "are used.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
