"""The `midigen` command line: thin commands that declare options and call one function.

One module per command, named after it, imported in the order `midigen --help` lists them.
"""

# isort: off
from midigen.cli import sample, train, inspect, demo, evaluate, stats, report  # noqa: F401  (registers)
from midigen.cli import encode, decode, corpus, play, show  # noqa: F401  (registers)
from midigen.cli.app import app, reflow_help

reflow_help(app)

# isort: on


def main() -> None:
    from midigen.threads import set_openmp_wait_policy

    set_openmp_wait_policy()  # before anything imports torch
    app()
