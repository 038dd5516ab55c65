"""The fault drill: concurrent appends through `ledger append` and over HTTP while it
kills -9 an append, a service worker, the projector and PostgreSQL itself, each
several times; then how many records were sent, acknowledged, stored, lost, doubled
and wrongly refused, how long the service was unavailable, and whether `ledger
verify` passes and a rebuild equals the live projections.

    python scripts/fault_drill.py [--seconds N] [--short] [--json] [--keep-logs]

It runs its own PostgreSQL cluster on a free loopback port, never another server, and
ends every process it started, and removes the cluster, however it ends (Ctrl-C
included). Exit 0 only when nothing was lost, doubled or wrongly refused, every record
was answered, verify passed and the rebuild agreed; 1 when something failed; 2 when
the drill could not run; 130 when interrupted.
"""

from __future__ import annotations

import json
import signal
import sys
from dataclasses import replace
from types import FrameType

import click

from scripts.drill.drill import Drill, DrillError, Options
from scripts.drill.report import text


def _interrupt(signum: int, _: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


@click.command()
@click.option("--seconds", type=click.FloatRange(10), default=None,
              help="Length of the fault phase [default: 120; 12 with --short].")  # fmt: skip
@click.option("--short", is_flag=True, help="The test suite's form: one fault of each kind.")
@click.option("--json", "as_json", is_flag=True, help="The figures as one JSON object.")
@click.option("--seed", default=1, show_default=True, type=int)
@click.option("--keep-logs", is_flag=True, help="Keep every process's output; print where.")
def main(seconds: float | None, short: bool, as_json: bool, seed: int, keep_logs: bool) -> None:
    """Run the fault drill against a throwaway PostgreSQL cluster."""
    options = Options.short(seed) if short else Options.full(seconds or 120, seed)
    if short and seconds is not None:
        options = replace(options, seconds=seconds)
    options = replace(options, keep_logs=keep_logs)
    # Set even where the shell ignored SIGINT (a background job): the drill must clean up.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _interrupt)

    def say(message: str) -> None:
        click.echo(message, err=True)

    try:
        figures = Drill(options, say).run()
    except DrillError as e:
        click.echo(f"the drill could not run: {e}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        click.echo("interrupted; every process the drill started has been ended", err=True)
        sys.exit(130)
    click.echo(json.dumps(figures, ensure_ascii=False) if as_json else text(figures))
    sys.exit(0 if figures["ok"] else 1)


if __name__ == "__main__":
    main()
