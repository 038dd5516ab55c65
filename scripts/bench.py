"""Benchmarks, each a ratio against a baseline measured in the same run.

    python scripts/bench.py [--citizens N] [--postgres URL] [--skip-demo] [--read-side]
                            [--no-partitioned]

- bulk ingest: `ledger append` of a generated NDJSON file into PostgreSQL, against
  the plain-psycopg ceiling (executemany of rows of the same size, 1000 rows per
  transaction, into a table of the same shape);
- where the time goes: validation, applying to aggregates, and saving, each timed
  alone in this process on the same records;
- rebuild of every policy's projection from zero, against a plain server-side scan
  of the events table, with the growth of peak memory; the catch-up of projections
  half the log behind, against the rebuild;
- score reads in-process: reads per second, p50 and p99 latency;
- the Merkle tree: appending with its upkeep against appending without it, inclusion
  proofs generated and verified per second, `ledger verify` of the whole log;
- over HTTP, with wrk (2 threads, 10 s; `apt-get install wrk`, the rows are skipped
  without it): score reads (16 connections) and single appends (32), each against a
  bare Flask route served by the same server, and where a request's CPU time goes;
  one NDJSON request of 100,000 records against `ledger append` of the same file;
- `ledger demo --citizens 10000` on SQLite, against its one-minute budget;
- `ledger append` of the same feed into a ledger of 16 partitions on three shards
  (three databases on the same server), against one database.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from projections import policy
from scripts.benchmarks.common import Spent, register, schema
from scripts.benchmarks.ingest import (
    demo_seconds,
    ledger_append,
    partitioned_append,
    phases,
    plain_ceiling,
    single_phases,
    tree_cost,
)
from scripts.benchmarks.readside import Rebuilt, proofs, reads, rebuild
from scripts.benchmarks.wrk import http_ingest, http_load
from scripts.demo import DEMO_UNTIL, Population

# Records appended with and without the Merkle tree's upkeep.
TREE_RECORDS = 30_000


def http_rows(
    table: Table, figures: dict[str, Any], ingest: dict[str, float], read_cpu: float,
    single: dict[str, float],
) -> None:  # fmt: skip
    """The HTTP rows: each figure beside its baseline from the same run, and where a
    request's CPU time went: the service's, PostgreSQL's and wrk's, and of the service's,
    what the same work costs in one process without HTTP (`read_cpu`, µs a score read;
    `single`, µs a record by phase), what the bare route costs, and the rest."""
    if not figures:
        table.add_row("HTTP rows", "skipped: wrk not found",
                      "install it: apt-get install wrk", "")  # fmt: skip
    else:
        for key, bare, label, target, p99 in (
            ("reads", "bare16", "score reads over HTTP, 16 connections", 0.5, 20),
            ("appends", "bare32", "single appends over HTTP, 32 connections", 0.3, 50),
        ):
            got, base = figures[key], figures[bare]
            cpu = got["cpu_us"]
            note = f"; stored once: {figures['stored']}" if key == "appends" else ""
            table.add_row(
                f"{label} (wrk, ledger serve --workers 2)",
                f"{got['rps']:,.0f}/s, p50 {got['p50']:.1f} ms, p99 {got['p99']:.1f} ms",
                f"bare Flask route, same server: {base['rps']:,.0f}/s, "
                f"p99 {base['p99']:.1f} ms",
                f"{got['rps'] / base['rps']:.2f} (target {target}, p99 under {p99} ms)"
                f"{'; not 2xx: ' + str(got['not_2xx']) if got['not_2xx'] else ''}{note}",
            )  # fmt: skip
            table.add_row(
                "  CPU per request", f"service {cpu['service']:,.0f} us",
                f"bare route {base['cpu_us']['service']:,.0f} us",
                f"PostgreSQL {cpu['postgres']:,.0f} us, wrk {cpu['wrk']:,.0f} us",
            )  # fmt: skip
            own = read_cpu if key == "reads" else sum(single.values())
            rest = cpu["service"] - own - base["cpu_us"]["service"]
            if key == "reads":
                alone = f"the read itself, in one process: {read_cpu:,.0f} us"
                why = (
                    "the route's own Flask work, handing each read to the read thread "
                    "and back, GIL contention"
                )
            else:
                alone = (f"in one process, batches of {figures['group']:.0f}: validating "
                         f"{single['validate']:,.0f} us, loading citizens "
                         f"{single['load']:,.0f} us, checks {single['check']:,.0f} us, "
                         f"saving {single['save']:,.0f} us")  # fmt: skip
                why = "the group commit's handoffs, GIL contention, the answer"
            table.add_row(
                "  of the service's CPU", alone, "plus the bare route's HTTP and Flask",
                f"the rest: {rest:,.0f} us ({why})",
            )  # fmt: skip
    receive = ingest["size"] / ingest["receive_seconds"]
    table.add_row(
        f"NDJSON over HTTP, one request of {ingest['size']:,.0f} records",
        f"{ingest['http']:,.0f} records/s ({ingest['appended']:,.0f} appended)",
        f"ledger append of the same file: {ingest['ledger_append']:,.0f} records/s",
        f"{ingest['http'] / ingest['ledger_append']:.2f} (target 0.80); receiving the "
        f"body alone: {ingest['receive_seconds']:.1f} s ({receive:,.0f} records/s)",
    )


def cpu_row(table: Table, label: str, spent: Spent, count: int, per: str, own: str) -> None:
    """Where the machine's CPU time went in a phase, per item, and what all the cores
    would do at that cost: a phase that misses its target with every core busy costs
    too much CPU an item; one that leaves cores idle waits on something."""
    machine, mine, rest = spent.per(count)
    cores = os.cpu_count() or 1
    table.add_row(
        f"  CPU, {label}",
        f"{machine:,.1f} us {per} in all",
        f"{own} {mine:,.1f} us, PostgreSQL and the rest {rest:,.1f} us",
        f"{spent.cores_busy:.2f} of {cores} cores busy; all {cores} at this cost: "
        f"{1e6 * cores / machine if machine else 0:,.0f}/s",
    )


def read_side_rows(table: Table, rebuilt: Rebuilt, read: tuple[float, float, float]) -> None:
    """The rebuild against the plain scan, the catch-up against the rebuild, and reads,
    each with where the machine's CPU went."""
    policies = len(policy.available())
    rebuild_rate = rebuilt.events / rebuilt.seconds
    scan_rate = rebuilt.events / rebuilt.scan_seconds
    table.add_row(
        f"rebuild of {policies} policies from zero, PostgreSQL",
        f"{rebuild_rate:,.0f} events/s",
        f"plain psycopg server-side scan: {scan_rate:,.0f} rows/s",
        f"{rebuild_rate / scan_rate:.2f} (target 0.60); peak memory {rebuilt.half_peak:.0f} MB "
        f"for half the log, {rebuilt.whole_peak:.0f} MB for all of it",
    )
    cpu_row(table, "rebuild", rebuilt.spent, rebuilt.events, "an event",
            "worker processes and their parent")  # fmt: skip
    for how, caught in (
        ("from cold (a fresh ledger project)", rebuilt.cold),
        ("kept warm (as --follow runs)", rebuilt.warm),
    ):
        table.add_row(
            f"catch-up of {policies} policies a quarter of the log behind, {how}",
            f"{caught.rate:,.0f} events/s", f"the rebuild: {rebuild_rate:,.0f} events/s",
            f"{caught.rate / rebuild_rate:.2f} (target 0.50)",
        )  # fmt: skip
        cpu_row(table, f"catch-up {how.split(' (')[0]}", caught.spent, caught.events,
                "an event", "worker processes and their parent")  # fmt: skip
    table.add_row(
        "score reads in-process, PostgreSQL", f"{read[0]:,.0f} reads/s",
        f"p50 {read[1]:.2f} ms, p99 {read[2]:.2f} ms", "target p99 under 1 ms",
    )  # fmt: skip


def tree_rows(
    table: Table, records: int, spent: dict[str, float], tree: tuple[Spent, Spent],
    proved: tuple[float, float, float], scan_rate: float,
) -> None:  # fmt: skip
    """Where a bulk record's time goes, the Merkle tree's upkeep (`tree`: the time and
    CPU of appending TREE_RECORDS records with and without it), proofs and `ledger
    verify` (`proved`: generated/s, verified/s, verified events/s)."""
    total = sum(spent.values())
    for phase, seconds in spent.items():
        table.add_row(
            f"  {phase} alone",
            f"{records / seconds:,.0f} records/s",
            "one process, same records",
            f"{seconds / total:.0%} of the serial time",
        )
    with_tree, without_tree = tree
    generated, verified, whole = proved
    table.add_row(
        "append with the Merkle tree, one process",
        f"{TREE_RECORDS / with_tree.wall:,.0f} records/s",
        f"without the tree: {TREE_RECORDS / without_tree.wall:,.0f} records/s",
        f"+{with_tree.wall / without_tree.wall - 1:.0%} (target under 15%)",
    )  # fmt: skip
    kept, bare = with_tree.per(TREE_RECORDS), without_tree.per(TREE_RECORDS)
    table.add_row(
        "  CPU of the tree's upkeep",
        f"{kept[0] - bare[0]:+,.1f} us a record in all",
        f"this process {kept[1] - bare[1]:+,.1f} us (leaf and node hashes, their rows), "
        f"PostgreSQL and the rest {kept[2] - bare[2]:+,.1f} us",
        f"of {bare[0]:,.1f} us a record without it",
    )  # fmt: skip
    table.add_row("inclusion proofs, PostgreSQL", f"{generated:,.0f} generated/s",
                  f"{verified:,.0f} verified/s", "")  # fmt: skip
    table.add_row(
        "ledger verify of the whole log", f"{whole:,.0f} events/s",
        f"plain scan {scan_rate:,.0f} rows/s", f"{whole / scan_rate:.2f}",
    )  # fmt: skip


@click.command()
@click.option("--citizens", default=10_000, show_default=True, help="Population for the feed.")
@click.option(
    "--postgres",
    default=os.environ.get("LEDGER_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"),
    show_default=True,
)
@click.option("--skip-demo", is_flag=True, help="Leave out the 10,000-citizen demo run.")
@click.option("--read-side", is_flag=True,
              help="Only ingest, rebuild, catch-up and in-process score reads.")  # fmt: skip
@click.option("--partitioned/--no-partitioned", default=True, show_default=True,
              help="Also ingest into a partitioned ledger on three databases.")  # fmt: skip
def main(citizens: int, postgres: str, skip_demo: bool, read_side: bool, partitioned: bool) -> None:
    """Run the benchmarks and print their table."""
    console = Console()
    records = Population(citizens, 1, DEMO_UNTIL).records()
    encoded = [json.dumps(r).encode() for r in records]
    with tempfile.TemporaryDirectory() as folder:
        feed = Path(folder) / "feed.ndjson"
        feed.write_bytes(b"\n".join(encoded) + b"\n")
        console.print(f"feed: {len(records):,} records, {feed.stat().st_size / 1e6:.1f} MB")

        with schema(postgres) as name:
            url = f"{postgres}?schema={name}"
            register(url)
            ingest, report, ingest_spent = ledger_append(url, feed)
            ceiling, rows, row_size = plain_ceiling(postgres, name)
            routed, routed_count = partitioned_append(postgres, feed) if partitioned else (0, 0)
            rebuilt = rebuild(postgres, name)
            read_rate, p50, p99, read_cpu = reads(postgres, name)
            if not read_side:
                generated, verified, whole = proofs(postgres, name)
                served_figures = http_load(postgres, name)
                group = round(served_figures.get("group", 8.0))
                single = single_phases(url, max(group, 1))
        if not read_side:
            with schema(postgres) as name:
                url = f"{postgres}?schema={name}"
                register(url)
                spent = phases(url, list(enumerate(encoded, start=1)))
            ingest_figures = http_ingest(postgres, records, 100_000)
            with_tree, without_tree = tree_cost(
                postgres, list(enumerate(encoded[:TREE_RECORDS], start=1))
            )

    table = Table("measure", "figure", "baseline", "ratio", title="scripts/bench.py")
    appended = int(str(report["appended"]))
    ingest_rate = appended / ingest
    ceiling_rate = rows / ceiling
    table.add_row(
        "ledger append, PostgreSQL",
        f"{ingest_rate:,.0f} records/s",
        f"plain psycopg executemany: {ceiling_rate:,.0f} rows/s ({row_size:.0f} B/row)",
        f"{ingest_rate / ceiling_rate:.2f} (target 0.50)",
    )
    cpu_row(table, "ledger append", ingest_spent, appended, "a record",
            "ledger append and its writers")  # fmt: skip
    if partitioned:
        routed_rate = routed_count / routed
        table.add_row(
            "ledger append into 16 partitions on 3 shards (3 databases, this server)",
            f"{routed_rate:,.0f} records/s", f"one database: {ingest_rate:,.0f} records/s",
            f"{routed_rate / ingest_rate:.2f} (target 0.90: routing costs under 10%)",
        )  # fmt: skip
    scan_rate = rebuilt.events / rebuilt.scan_seconds
    read_side_rows(table, rebuilt, (read_rate, p50, p99))
    if not read_side:
        tree_rows(table, len(records), spent, (with_tree, without_tree),
                  (generated, verified, whole), scan_rate)  # fmt: skip
        http_rows(table, served_figures, ingest_figures, read_cpu, single)
    if not skip_demo and not read_side:
        seconds = demo_seconds(10_000)
        table.add_row(
            "ledger demo --citizens 10000, SQLite", f"{seconds:.1f} s", "budget 60 s",
            f"{seconds / 60:.2f} of budget",
        )  # fmt: skip
    console.print(table)
    if report["rejected"]:
        raise click.ClickException(f"the feed had rejections: {report['rejected']!r:.500}")


if __name__ == "__main__":
    main()
