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
