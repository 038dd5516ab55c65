"""The failover drill: a shard replicated by pg_auto_failover loses its primary to
kill -9 under a load of appends; every acknowledged record must be stored once.

    python scripts/failover_drill.py [--citizens N] [--json]

Loopback only, bounded in time; needs pg_autoctl (Debian: postgresql-15-auto-failover
and pg-auto-failover-cli) and, as root, a postgres user to run the servers as. Exit 0
when nothing acknowledged was lost or doubled and `ledger verify` passed, 1 otherwise.
"""

from __future__ import annotations

import sys

import click
import orjson

from scripts.drill.failover import FailoverError, drill


@click.command()
@click.option("--citizens", default=300, show_default=True, type=click.IntRange(10),
              help="Population of the generated feed (about ten records each).")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="The figures as one JSON object.")
def main(citizens: int, as_json: bool) -> None:
    """Run the drill and print what was acknowledged, stored, lost and doubled."""
    try:
        figures = drill(citizens, lambda line: click.echo(f"drill: {line}", err=True))
    except FailoverError as e:
        raise click.ClickException(str(e)) from None
    data = figures.to_json()
    if as_json:
        click.echo(orjson.dumps(data).decode())
    else:
        for key, value in data.items():
            click.echo(f"{key.replace('_', ' ')}: {value}")
    if figures.lost or figures.doubled or not figures.verified:
        sys.exit(1)


if __name__ == "__main__":
    main()
