"""The write path's benchmarks: `ledger append` and its plain-psycopg ceiling, the
partitioned ledger, the Merkle tree's upkeep, and where a record's time goes in one
process, in bulk batches and in the small batches of single appends."""

from __future__ import annotations

import json
import random
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
import orjson
import psycopg

from ledger.application import AppendReport, Ledger, parse_numbered
from projections import policy
from projections.store import ViewStore
from scripts.benchmarks.common import LEDGER, Spent, register, schema, settle, spending

ROWS_PER_TRANSACTION = 1000

TREE_ROUNDS = 3


def ledger_append(url: str, path: Path) -> tuple[float, dict[str, object], Spent]:
    """`ledger append` of the file: seconds, its report, and where the machine's CPU
    time went meanwhile (the command and its writers; the rest, mostly PostgreSQL)."""
    settle(url.split("?", 1)[0])
    with spending() as spent:
        done = subprocess.run(
            [LEDGER, "append", str(path), "--json", "--db", url],
            capture_output=True,
            check=False,
        )
    if done.returncode != 0:
        raise click.ClickException(f"ledger append failed: {done.stderr.decode()[-2000:]}")
    report: dict[str, object] = json.loads(done.stdout)
    return spent.wall, report, spent


@contextmanager
def shards(url: str, count: int = 3) -> Iterator[list[str]]:
    """`count` empty databases on the server at `url`, as shard URLs."""
    stem = "bench_shard_" + uuid.uuid4().hex[:8]
    names = [f"{stem}_{n}" for n in range(count)]
    base = url.rsplit("/", 1)[0]
    with psycopg.connect(url, autocommit=True) as conn:
        for name in names:
            conn.execute(f"CREATE DATABASE {name}")
    try:
        yield [f"{base}/{name}" for name in names]
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            for name in names:
                conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def partitioned_append(postgres: str, path: Path, partitions: int = 16) -> tuple[float, int]:
    """`ledger append` of the feed into a ledger of `partitions` partitions on three
    shards (three databases on the same server): (seconds, records appended)."""
    with schema(postgres) as name, shards(postgres) as urls:
        catalog = f"{postgres}?schema={name}"
        subprocess.run(
            [LEDGER, "shards", "init", "--partitions", str(partitions), "--db", catalog,
             *(f"--shard=s{n}={url}" for n, url in enumerate(urls))],
            check=True, capture_output=True,
        )  # fmt: skip
        register(catalog)
        seconds, report, _ = ledger_append(catalog, path)
        return seconds, int(str(report["appended"]))


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
        settle(url)
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


def tree_cost(
    url: str, lines: list[tuple[int, bytes]], rounds: int = TREE_ROUNDS
) -> tuple[Spent, Spent]:
    """Appending the same records in one process with the Merkle tree kept up to date,
    and with its upkeep switched off, each into an empty schema: the fastest of `rounds`
    of each, taken in turns, since the difference sought is smaller than what one run
    varies by on a shared machine; with where the machine's CPU went in each."""
    timings: dict[bool, list[Spent]] = {True: [], False: []}
    for _ in range(rounds):
        for keep_tree in (True, False):
            with schema(url) as name:
                target = f"{url}?schema={name}"
                register(target)
                app = Ledger(target)
                if not keep_tree:
                    # Timing only: the recorder with its tree upkeep switched off.
                    app.recorder._grow_tree = lambda *_: None  # type: ignore[attr-defined]
                settle(url)
                with spending() as spent:
                    app.append_lines(lines)
                timings[keep_tree].append(spent)
                app.close()
    fastest = {keep: min(runs, key=lambda spent: spent.wall) for keep, runs in timings.items()}
    return fastest[True], fastest[False]


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


def single_phases(url: str, size: int, batches: int = 150) -> dict[str, float]:
    """Where an HTTP append's time goes without HTTP: batches of `size` single payments
    for random enrolled citizens, as the group commit hands them to the ledger, each
    phase timed in this process's CPU, in µs a record: validating the records, loading
    their citizens (and the registry) from their stored events, checking them (the
    index lookup and the rules) and saving them (events, index rows and tree in one
    transaction)."""
    app = Ledger(url)
    views = ViewStore(url)
    residents = views.residents(policy.DEFAULT_POLICY)
    views.close()
    rng = random.Random(11)
    run = uuid.uuid4().hex[:8]
    spent = {"validate": 0.0, "load": 0.0, "check": 0.0, "save": 0.0}
    load = app._load

    def timed_load(ids: set[uuid.UUID]) -> Any:
        started = time.process_time()
        try:
            return load(ids)
        finally:
            spent["load"] += time.process_time() - started

    app._load = timed_load  # type: ignore[method-assign]
    for b in range(batches):
        lines = [(k + 1, orjson.dumps({
            "type": "payment.recorded", "citizen": rng.choice(residents),
            "authority": "tax-bureau", "reference": f"PHASE-{run}-{b}-{k}",
            "occurred_on": "2026-06-30", "kind": "tax_paid_on_time", "amount": "10.00",
        })) for k in range(size)]  # fmt: skip
        t0 = time.process_time()
        parsed, _ = parse_numbered(lines)
        t1 = time.process_time()
        loaded = spent["load"]
        batch = app._apply(parsed)
        t2 = time.process_time()
        app._save(batch, exclusive=False)
        t3 = time.process_time()
        spent["validate"] += t1 - t0
        spent["check"] += (t2 - t1) - (spent["load"] - loaded)
        spent["save"] += t3 - t2
        # Each writer meets most citizens for the first time: none is kept.
        app._forget(batch.citizens)
    app.close()
    return {phase: 1e6 * seconds / (batches * size) for phase, seconds in spent.items()}


def demo_seconds(citizens: int) -> float:
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        subprocess.run(
            [LEDGER, "demo", "--citizens", str(citizens), "--db",
             f"sqlite:///{folder}/demo.db"],
            check=True, capture_output=True,
        )  # fmt: skip
        return time.perf_counter() - started
