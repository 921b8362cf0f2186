"""The `midigen` command line: thin commands that declare options and call one function."""

from midigen.cli import generate, learn, listen, measure, report, scores  # noqa: F401  (registers)
from midigen.cli.app import app


def main() -> None:
    from midigen.threads import set_openmp_wait_policy

    set_openmp_wait_policy()  # before anything imports torch
    app()
