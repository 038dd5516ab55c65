"""The `ledger` command's entry point, which imports the command only when it runs.

A process the command starts by spawning (a bulk append's writers, a rebuild's
workers) imports the entry point's module again before it starts its own work; from
here it imports nothing else, instead of the whole command line and the service."""

from __future__ import annotations


def main() -> None:
    from scripts.cli import main as command  # noqa: PLC0415 - the point of this module

    command()
