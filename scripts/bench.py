"""Benchmarks, each a ratio against a baseline measured in the same run.

    python scripts/bench.py [--citizens N] [--postgres URL] [--skip-demo] [--read-side]

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
- `ledger demo --citizens 10000` on SQLite, against its one-minute budget.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import click
import orjson
import psycopg
from rich.console import Console
from rich.table import Table

from ledger.application import AppendReport, Ledger, parse_numbered
from ledger.transparency import merkle
from ledger.transparency.audit import Log, verify_log
from projections import policy
from projections.queries import Scores
from projections.store import ViewStore
from scripts.demo import DEMO_AUTHORITIES, DEMO_UNTIL, Population
from scripts.tokens import TokenStore

LEDGER = str(Path(sys.executable).with_name("ledger"))
ROWS_PER_TRANSACTION = 1000


@contextmanager
def schema(url: str) -> Iterator[str]:
    name = "bench_" + uuid.uuid4().hex[:10]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {name}")
    try:
        yield name
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {name} CASCADE")


def register(url: str) -> None:
    app = Ledger(url)
    for spec in DEMO_AUTHORITIES:
        app.register_authority(spec.authority_id, spec.name, list(spec.may_issue))
    app.close()


def ledger_append(url: str, path: Path) -> tuple[float, dict[str, object]]:
    started = time.perf_counter()
    done = subprocess.run(
        [LEDGER, "append", str(path), "--json", "--db", url],
        capture_output=True,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise click.ClickException(f"ledger append failed: {done.stderr.decode()[-2000:]}")
    report: dict[str, object] = json.loads(done.stdout)
    return elapsed, report


def plain_ceiling(url: str, name: str) -> tuple[float, int, float]:
    """executemany of the ledger's own stored rows into a table of the same shape."""
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            f"SELECT originator_id, originator_version, topic, state "
            f"FROM {name}.ledger_events WHERE topic LIKE '%%Citizen%%' "
            "ORDER BY notification_id"
        ).fetchall()
        conn.execute(
            f"CREATE TABLE {name}.ceiling (originator_id uuid NOT NULL, "
            "originator_version bigint NOT NULL, topic text, state bytea, "
            "notification_id bigserial, PRIMARY KEY (originator_id, originator_version))"
        )
        size = sum(len(r[3]) + len(r[2]) + 24 for r in rows) / max(len(rows), 1)
        started = time.perf_counter()
        with conn.cursor() as cur:
            for i in range(0, len(rows), ROWS_PER_TRANSACTION):
                with conn.transaction():
                    cur.executemany(
                        f"INSERT INTO {name}.ceiling (originator_id, originator_version, "
                        "topic, state) VALUES (%s, %s, %s, %s)",
                        rows[i : i + ROWS_PER_TRANSACTION],
                    )
        return time.perf_counter() - started, len(rows), size


REBUILD = """
import sys, time
from ledger.application import Ledger
from projections import policy
from projections.runner import catch_up
from projections.store import ViewStore
url, stop = sys.argv[1], int(sys.argv[2])
app, store = Ledger(url), ViewStore(url)
with store.transaction() as tx:
    tx.execute("DELETE FROM projection_tracking")
started = time.perf_counter()
catch_up(app, store, [policy.load(n) for n in policy.available()], stop_at=stop)
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across exec.
peak = next(line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM"))
print(time.perf_counter() - started, peak)
"""


CATCH_UP = """
import sys, time
from ledger.application import Ledger
from projections import policy
from projections.known import KnownFacts
from projections.runner import catch_up
from projections.store import ViewStore
app, store = Ledger(sys.argv[1]), ViewStore(sys.argv[1])
policies = [policy.load(n) for n in policy.available()]
known = KnownFacts()
figures = []
# Half the log behind in two halves: the first as a fresh `ledger project` meets it
# (every citizen read from the log), the second as a follower that wrote the first.
for stop in (int(sys.argv[2]), None):
    start = min(store.positions().values())
    started = time.perf_counter()
    reached = catch_up(app, store, policies, stop_at=stop, known=known)
    figures += [time.perf_counter() - started, min(reached.values()) - start]
print(*figures)
"""


def rebuild(
    url: str, name: str
) -> tuple[float, int, float, float, float, tuple[float, int, float, int]]:
    """Projections of every policy from position zero, against a plain scan of the log,
    and the catch-up of projections that are half the log behind.

    Each rebuild runs in a process of its own, over half the log and then all of it,
    so their peak memory can be compared; between them the half-built projections
    catch up to the end in one process: the third quarter from cold, the last quarter
    with the facts it wrote kept, as a follower has them. Returns (rebuild seconds,
    events, scan seconds, peak MB for half the log, peak MB for all of it, and the
    seconds and events of the cold and of the warm catch-up).
    """
    with psycopg.connect(url, autocommit=True) as conn:
        started = time.perf_counter()
        events = 0
        with conn.cursor(name="scan") as cur, conn.transaction():
            cur.itersize = 10_000
            cur.execute(f"SELECT * FROM {name}.ledger_events ORDER BY notification_id")
            for _ in cur:
                events += 1
        scan = time.perf_counter() - started
    peaks = []
    seconds = 0.0
    caught = (0.0, 0, 0.0, 0)
    for stop in (events // 2, events):
        done = subprocess.run(
            [sys.executable, "-c", REBUILD, f"{url}?schema={name}", str(stop)],
            capture_output=True, check=True, text=True,
        )  # fmt: skip
        spent, peak = done.stdout.split()
        seconds = float(spent)
        peaks.append(int(peak) / 1024)
        if stop < events:
            done = subprocess.run(
                [sys.executable, "-c", CATCH_UP, f"{url}?schema={name}", str(3 * events // 4)],
                capture_output=True, check=True, text=True,
            )  # fmt: skip
            cold, cold_moved, warm, warm_moved = done.stdout.split()
            caught = (float(cold), int(cold_moved), float(warm), int(warm_moved))
    return seconds, events, scan, peaks[0], peaks[1], caught


def reads(url: str, name: str, count: int = 3000) -> tuple[float, float, float]:
    """In-process score reads of random citizens: (reads/s, p50 ms, p99 ms)."""
    app = Ledger(f"{url}?schema={name}")
    store = ViewStore(f"{url}?schema={name}")
    scores = Scores(app, store)
    residents = store.residents(policy.DEFAULT_POLICY)
    rng = random.Random(7)
    latencies = []
    for _ in range(count):
        citizen = rng.choice(residents)
        started = time.perf_counter()
        scores.score(citizen)
        latencies.append(time.perf_counter() - started)
    app.close()
    store.close()
    latencies.sort()
    return (count / sum(latencies), 1000 * latencies[len(latencies) // 2],
            1000 * latencies[int(len(latencies) * 0.99)])  # fmt: skip


def tree_cost(url: str, lines: list[tuple[int, bytes]]) -> tuple[float, float]:
    """Seconds to append the same records in one process with the Merkle tree kept up
    to date, and with its upkeep switched off, each into an empty schema."""
    timings = []
    for keep_tree in (True, False):
        with schema(url) as name:
            target = f"{url}?schema={name}"
            register(target)
            app = Ledger(target)
            if not keep_tree:
                # Timing only: the recorder with its tree upkeep switched off.
                app.recorder._grow_tree = lambda *_: None  # type: ignore[attr-defined]
            started = time.perf_counter()
            app.append_lines(lines)
            timings.append(time.perf_counter() - started)
            app.close()
    return timings[0], timings[1]


def proofs(url: str, name: str, count: int = 2000) -> tuple[float, float, float]:
    """Inclusion proofs generated and verified per second, and `verify_log` events/s."""
    app = Ledger(f"{url}?schema={name}")
    log = Log(app)
    size = log.size()
    rng = random.Random(3)
    positions = [rng.randint(1, app.max_position()) for _ in range(count)]
    started = time.perf_counter()
    made = [log.inclusion(p, size) for p in positions]
    generated = count / (time.perf_counter() - started)
    started = time.perf_counter()
    for proof in made:
        merkle.verify_inclusion(proof.leaf_hash, proof.index, proof.size, proof.proof, proof.root)
    verified = count / (time.perf_counter() - started)
    started = time.perf_counter()
    if verify_log(app) is not None:
        raise click.ClickException("the benchmark's own log does not verify")
    whole = size / (time.perf_counter() - started)
    app.close()
    return generated, verified, whole


@contextmanager
def served(url: str) -> Iterator[int]:
    """`ledger serve` with 2 workers on a free loopback port, for the run's duration."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    process = subprocess.Popen(
        [LEDGER, "serve", "--port", str(port), "--workers", "2", "--db", url],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for _ in range(150):
            try:
                http.client.HTTPConnection("127.0.0.1", port, timeout=1).request("GET", "/healthz")
                break
            except OSError:
                time.sleep(0.2)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=15)


def _clients(
    port: int, count: int, work: Callable[[http.client.HTTPConnection, int], None]
) -> float:
    """Run `work(connection, client number)` in `count` threads; the seconds it took."""

    def run(number: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        work(connection, number)
        connection.close()

    started = time.perf_counter()
    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started


def http_load(url: str, name: str, encoded: list[bytes]) -> dict[str, float]:
    """Score reads, concurrent single appends and NDJSON ingest over real HTTP."""
    target = f"{url}?schema={name}"
    views = ViewStore(target)
    store = TokenStore(views)
    now = datetime.now(UTC)
    reader = store.create("reader", None, None, now)[0]
    residents = views.residents(policy.DEFAULT_POLICY)
    figures: dict[str, float] = {}
    with served(target) as port:
        latencies: list[float] = []

        def read(connection: http.client.HTTPConnection, number: int) -> None:
            rng = random.Random(number)
            for _ in range(400):
                started = time.perf_counter()
                connection.request("GET", f"/v1/citizens/{rng.choice(residents)}/score",
                                   headers={"Authorization": f"Bearer {reader}"})  # fmt: skip
                response = connection.getresponse()
                response.read()
                latencies.append(time.perf_counter() - started)
                if response.status != 200:
                    raise click.ClickException(f"score read answered {response.status}")

        seconds = _clients(port, 8, read)
        latencies.sort()
        figures["reads"] = len(latencies) / seconds
        figures["p50"] = 1000 * latencies[len(latencies) // 2]
        figures["p99"] = 1000 * latencies[int(len(latencies) * 0.99)]
        service = store.create("service", "tax-bureau", None, now)[0]

        def append(connection: http.client.HTTPConnection, number: int) -> None:
            for n in range(100):
                body = orjson.dumps({
                    "type": "payment.recorded",
                    "citizen": residents[(number * 100 + n) % len(residents)],
                    "authority": "tax-bureau", "reference": f"BENCH-{number}-{n}",
                    "occurred_on": "2026-06-30", "kind": "tax_paid_on_time", "amount": "10.00",
                })  # fmt: skip
                connection.request(
                    "POST",
                    "/v1/records",
                    body=body,
                    headers={
                        "Authorization": f"Bearer {service}",
                        "Content-Type": "application/json",
                    },
                )
                response = connection.getresponse()
                response.read()
                if response.status not in (200, 201):
                    raise click.ClickException(f"an append answered {response.status}")

        figures["appends"] = 1600 / _clients(port, 16, append)
    views.close()
    figures.update(http_ingest(url, encoded, now))
    return figures


def http_ingest(url: str, encoded: list[bytes], now: datetime) -> dict[str, float]:
    """The feed appended over HTTP into an empty schema: records/s and how many went in."""
    figures: dict[str, float] = {}
    # A service token appends for its own authority only: the feed goes in as one
    # NDJSON request per authority, in an order that puts every target before the
    # records acting on it (enrolments first, disputes and repairs last).
    by_authority: dict[str, list[bytes]] = {}
    for line in encoded:
        by_authority.setdefault(orjson.loads(line)["authority"], []).append(line)
    order = [a.authority_id for a in DEMO_AUTHORITIES]
    with schema(url) as fresh:
        target = f"{url}?schema={fresh}"
        register(target)
        views = ViewStore(target)
        store = TokenStore(views)
        issued = {a: store.create("service", a, None, now)[0] for a in order}
        views.close()
        with served(target) as port:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
            started = time.perf_counter()
            appended = 0
            for authority in order:
                connection.request(
                    "POST", "/v1/records", body=b"\n".join(by_authority.get(authority, [])),
                    headers={"Authorization": f"Bearer {issued[authority]}",
                             "Content-Type": "application/x-ndjson"},
                )  # fmt: skip
                response = connection.getresponse()
                report = orjson.loads(response.read())
                appended += int(report.get("appended", 0))
            figures["ingest"] = len(encoded) / (time.perf_counter() - started)
            figures["ingest_appended"] = appended
    return figures


def phases(url: str, lines: list[tuple[int, bytes]]) -> dict[str, float]:
    """Seconds spent validating, applying and saving the same records, each alone."""
    app = Ledger(url)
    started = time.perf_counter()
    batches = [parse_numbered(lines[i : i + 1000])[0] for i in range(0, len(lines), 1000)]
    validate = time.perf_counter() - started
    apply = save = 0.0
    report = AppendReport()
    for parsed in batches:
        t0 = time.perf_counter()
        batch = app._apply(parsed)
        t1 = time.perf_counter()
        recordings = app._save(batch, exclusive=False)
        t2 = time.perf_counter()
        app._remember(batch.citizens)
        app._report(batch, recordings, report)
        apply += t1 - t0
        save += t2 - t1
    app.close()
    return {"validate": validate, "apply": apply, "save": save}


def demo_seconds(citizens: int) -> float:
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        subprocess.run(
            [LEDGER, "demo", "--citizens", str(citizens), "--db",
             f"sqlite:///{folder}/demo.db"],
            check=True, capture_output=True,
        )  # fmt: skip
        return time.perf_counter() - started


def read_side_rows(
    table: Table, rebuild_rate: float, scan_rate: float, peaks: tuple[float, float],
    caught: tuple[float, int, float, int], read: tuple[float, float, float],
) -> None:  # fmt: skip
    """The rebuild against the plain scan, the catch-up against the rebuild, and reads."""
    policies = len(policy.available())
    table.add_row(
        f"rebuild of {policies} policies from zero, PostgreSQL",
        f"{rebuild_rate:,.0f} events/s",
        f"plain psycopg server-side scan: {scan_rate:,.0f} rows/s",
        f"{rebuild_rate / scan_rate:.2f} (target 0.60); peak memory {peaks[0]:.0f} MB "
        f"for half the log, {peaks[1]:.0f} MB for all of it",
    )
    cold, cold_moved, warm, warm_moved = caught
    for how, rate in (
        ("from cold (a fresh ledger project)", cold_moved / cold if cold else 0.0),
        ("kept warm (as --follow runs)", warm_moved / warm if warm else 0.0),
    ):
        table.add_row(
            f"catch-up of {policies} policies a quarter of the log behind, {how}",
            f"{rate:,.0f} events/s", f"the rebuild: {rebuild_rate:,.0f} events/s",
            f"{rate / rebuild_rate:.2f} (target 0.50)",
        )  # fmt: skip
    table.add_row(
        "score reads in-process, PostgreSQL", f"{read[0]:,.0f} reads/s",
        f"p50 {read[1]:.2f} ms, p99 {read[2]:.2f} ms", "target p99 under 1 ms",
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
def main(citizens: int, postgres: str, skip_demo: bool, read_side: bool) -> None:
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
            ingest, report = ledger_append(url, feed)
            ceiling, rows, row_size = plain_ceiling(postgres, name)
            projected, events, scan, half_peak, full_peak, caught = rebuild(postgres, name)
            read_rate, p50, p99 = reads(postgres, name)
            if not read_side:
                generated, verified, whole = proofs(postgres, name)
                served_figures = http_load(postgres, name, encoded)
        if not read_side:
            with schema(postgres) as name:
                url = f"{postgres}?schema={name}"
                register(url)
                spent = phases(url, list(enumerate(encoded, start=1)))
            with_tree, without_tree = tree_cost(
                postgres, list(enumerate(encoded[:30_000], start=1))
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
    scan_rate = events / scan
    read_side_rows(table, events / projected, scan_rate, (half_peak, full_peak), caught,
                   (read_rate, p50, p99))  # fmt: skip
    if not read_side:
        total = sum(spent.values())
        for phase, seconds in spent.items():
            table.add_row(
                f"  {phase} alone",
                f"{len(records) / seconds:,.0f} records/s",
                "one process, same records",
                f"{seconds / total:.0%} of the serial time",
            )
        table.add_row(
            "append with the Merkle tree, one process", f"{30_000 / with_tree:,.0f} records/s",
            f"without the tree: {30_000 / without_tree:,.0f} records/s",
            f"+{with_tree / without_tree - 1:.0%} (target under 20%)",
        )  # fmt: skip
        table.add_row("inclusion proofs, PostgreSQL", f"{generated:,.0f} generated/s",
                      f"{verified:,.0f} verified/s", "")  # fmt: skip
        table.add_row(
            "ledger verify of the whole log", f"{whole:,.0f} events/s",
            f"plain scan {scan_rate:,.0f} rows/s", f"{whole / scan_rate:.2f}",
        )  # fmt: skip
        table.add_row(
            "score reads over HTTP, 8 clients, 2 workers",
            f"{served_figures['reads']:,.0f} reads/s",
            f"p50 {served_figures['p50']:.1f} ms, p99 {served_figures['p99']:.1f} ms",
            "target 2,000/s, p99 under 20 ms",
        )  # fmt: skip
        table.add_row(
            "single appends over HTTP, 16 clients", f"{served_figures['appends']:,.0f} appends/s",
            "one transaction per request", "target 2,000/s",
        )  # fmt: skip
        table.add_row(
            "NDJSON ingest over HTTP, one request", f"{served_figures['ingest']:,.0f} records/s",
            f"ledger append {ingest_rate:,.0f} records/s",
            f"{served_figures['ingest'] / ingest_rate:.2f} (target 0.80; "
            f"{served_figures['ingest_appended']:,.0f} appended)",
        )  # fmt: skip
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
