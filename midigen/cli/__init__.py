"""The `midigen` command line: thin commands that declare options and call one function."""

from midigen.cli.app import app
from midigen.cli import generate, learn, listen, measure, scores  # noqa: F401  (registers)


def main() -> None:
    app()
