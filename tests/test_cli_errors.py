"""The CLI's last guard: library errors become one line and exit 1, usage errors stay usage
(2), bugs exit 70."""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from midigen.cli.app import _ErrorsAsLines
from midigen.errors import MidigenError


def make_app() -> typer.Typer:
    app = typer.Typer(cls=_ErrorsAsLines, pretty_exceptions_enable=False)

    @app.command()
    def library_error():
        raise MidigenError("the score is empty")

    @app.command()
    def usage_error():
        raise typer.BadParameter("temperature must be positive")

    @app.command()
    def bug():
        raise ZeroDivisionError("division by zero")

    return app


runner = CliRunner()


def test_library_errors_are_one_line_and_exit_1():
    result = runner.invoke(make_app(), ["library-error"])
    assert result.exit_code == 1
    assert result.output.strip() == "error: the score is empty"


def test_usage_errors_keep_clicks_exit_code_2():
    result = runner.invoke(make_app(), ["usage-error"])
    assert result.exit_code == 2
    assert "temperature must be positive" in result.output
    assert "internal error" not in result.output


def test_unexpected_errors_show_no_traceback(monkeypatch):
    monkeypatch.delenv("MIDIGEN_DEBUG", raising=False)
    result = runner.invoke(make_app(), ["bug"])
    assert result.exit_code == 70  # apart from usage errors (2), so scripts can tell a bug
    assert "Traceback" not in result.output
    assert "internal error (ZeroDivisionError" in result.output


def test_a_closed_pipe_stops_quietly(tmp_path):
    """`midigen encode ... | head -1`: the reader went away, which is no error of midigen's."""
    import subprocess
    import sys

    from tests.fixtures.score_files import ABC_THREE_TUNES

    tunes = tmp_path / "tunes.abc"
    tunes.write_text(ABC_THREE_TUNES * 200)
    proc = subprocess.Popen([sys.executable, "-m", "midigen", "encode", str(tunes)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # nobody reads what it prints
    stderr = proc.stderr.read().decode()
    assert proc.wait() == 141  # 128 + SIGPIPE, as a shell reports a program stopped by it
    assert "error" not in stderr and "Traceback" not in stderr


def test_help_paragraphs_wrap_to_the_terminal(monkeypatch):
    """Line breaks inside a docstring paragraph must not reach `--help` as ragged lines."""
    from midigen.cli import app

    monkeypatch.setenv("COLUMNS", "200")
    result = CliRunner().invoke(app, ["train", "--help"])
    assert result.exit_code == 0
    assert "the N processes train one model together" in " ".join(result.output.split("\n"))
    assert "the N processes" in result.output  # one line, not "the N" then "processes"
