"""`ledger shards`: a partitioned ledger's catalog and where its partitions live."""

from __future__ import annotations

import sys

import click
from rich.console import Console
from rich.table import Table

from ledger.application import Ledger
from ledger.domain.shards import ShardMap
from ledger.partitioned import Catalog
from ledger.partitioned.claims import check_claims
from ledger.partitioned.move import move_partition
from scripts.cli.base import db_option, emit_json, main, open_ledger, open_routed
from scripts.errors import EXIT_REJECTED


@main.group()
def shards() -> None:
    """A ledger partitioned over PostgreSQL shards: its catalog is the --db database."""


def _shard(_: object, param: click.Parameter, values: tuple[str, ...]) -> list[tuple[str, str]]:
    found = []
    for value in values:
        name, sep, url = value.partition("=")
        if not sep or not name or not url:
            raise click.BadParameter(f"{value!r}: give a shard as NAME=postgresql://HOST/DB")
        found.append((name, url))
    return found


@shards.command("init")
@click.option("--partitions", type=click.IntRange(1), required=True,
              help="How many partitions the ledger has, for ever.")  # fmt: skip
@click.option("--shard", "shard_urls", multiple=True, callback=_shard, required=True,
              help="NAME=postgresql://HOST/DB, once per shard; partitions go on them in "
                   "turn.")  # fmt: skip
@db_option
def shards_init(partitions: int, shard_urls: list[tuple[str, str]], url: str) -> None:
    """Make the empty --db database the catalog of a partitioned ledger, and create
    every partition's schema on its shard."""
    with open_ledger(url) as app:
        shard_map = Catalog(app).init(partitions, shard_urls)
    _print_map(shard_map, False)


@shards.command("add")
@click.argument("name")
@click.argument("shard_url", metavar="URL")
@db_option
def shards_add(name: str, shard_url: str, url: str) -> None:
    """Add a shard to the map, to move partitions to."""
    with open_ledger(url) as app:
        Catalog(app).add_shard(name, shard_url)
    click.echo(f"added shard {name}")


@shards.command("move")
@click.argument("partition", type=click.IntRange(0))
@click.argument("shard")
@db_option
def shards_move(partition: int, shard: str, url: str) -> None:
    """Move PARTITION to SHARD while the other partitions keep taking writes; its own
    writers wait while it is copied and checked, then go on at the new shard. Its views
    are built again there by the next `ledger project`."""
    with open_ledger(url) as app:
        moved = move_partition(
            Catalog(app), partition, shard, lambda line: click.echo(line, err=True)
        )
    click.echo(f"moved partition {moved.partition} ({moved.events} events) to shard {shard}; "
               f"frozen {moved.frozen_seconds:.1f}s")  # fmt: skip


@shards.command("claim-references")
@db_option
def shards_claim_references(url: str) -> None:
    """Claim the references of records stored before a partitioned ledger claimed them
    (see `ledger verify`), so none can be taken by a record in another partition.

    Exit 0 when every stored record holds its claim, 1 when a reference is held by
    records in two partitions (each named)."""
    with open_routed(url) as routed:
        if isinstance(routed, Ledger):
            raise click.ClickException("this ledger is one log: its record index holds every "
                                       "reference already")  # fmt: skip
        checked = check_claims(routed, fill=True)
    click.echo(f"checked {checked.records} records: {checked.claimed} references claimed now")
    for double in checked.doubles():
        click.echo(double, err=True)
    if checked.doubled:
        sys.exit(EXIT_REJECTED)


@shards.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
@db_option
def shards_list(as_json: bool, url: str) -> None:
    """The shards and the partitions each one hosts."""
    with open_ledger(url) as app:
        shard_map = Catalog(app).shard_map()
    _print_map(shard_map, as_json)


def _print_map(shard_map: ShardMap, as_json: bool) -> None:
    hosted = {
        name: [p for p, on in sorted(shard_map.placement.items()) if on == name]
        for name in shard_map.shards
    }
    if as_json:
        emit_json({
            "partitions": shard_map.partitions,
            "shards": [{"name": name, "url": url, "partitions": hosted[name]}
                       for name, url in shard_map.shards.items()],
        })  # fmt: skip
        return
    table = Table("shard", "url", "partitions", title=f"{shard_map.partitions} partitions")
    for name, shard_url in shard_map.shards.items():
        table.add_row(name, shard_url, " ".join(map(str, hosted[name])) or "-")
    Console(width=160).print(table)
