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

import http.client
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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
TREE_ROUNDS = 3
BEST_OF = 3


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


def settle(url: str) -> None:
    """A checkpoint before a phase that writes is timed: what the phase before it wrote
    is flushed now, not in its time (a checkpoint landing in one phase and not in the
    other moved the ratio of partitioned to plain ingest by a tenth)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CHECKPOINT")


def register(url: str) -> None:
    app = Ledger(url)
    for spec in DEMO_AUTHORITIES:
        app.register_authority(spec.authority_id, spec.name, list(spec.may_issue))
    app.close()


def ledger_append(url: str, path: Path) -> tuple[float, dict[str, object]]:
    settle(url.split("?", 1)[0])
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
        seconds, report = ledger_append(catalog, path)
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
from projections.known import KnownViews
from projections.runner import catch_up
from projections.store import ViewStore
app, store = Ledger(sys.argv[1]), ViewStore(sys.argv[1])
policies = [policy.load(n) for n in policy.available()]
known = KnownViews(keep_shares=True)
figures = []
# Half the log behind in two halves: the first as a fresh `ledger project` meets it
# (every citizen read from the log), the second as a follower that wrote the first.
for stop in (int(sys.argv[2]), None):
    start = min(store.positions().values())
    started = time.perf_counter()
    reached = catch_up(app, store, policies, stop_at=stop, known=known)
    figures += [time.perf_counter() - started, min(reached.values()) - start]
known.close()
print(*figures)
"""


def rebuild(
    url: str, name: str
) -> tuple[float, int, float, float, float, tuple[float, int, float, int]]:
    """Projections of every policy from position zero, against a plain scan of the log,
    and the catch-up of projections that are half the log behind.

    Each rebuild runs in a process of its own, over half the log (after which the
    half-built projections catch up to the end in one process: the third quarter from
    cold, the last quarter with the facts it wrote kept, as a follower has them) and
    over all of it, so their peak memory can be compared. The rebuild of all the log
    and each catch-up are timed BEST_OF times, and the scan once more (before all, and
    after each rebuild of all the log, so that a slow spell of the machine meets both);
    the best of each is kept, as the machine's speed wanders by a fifth from run to
    run. Returns (rebuild seconds, events, scan seconds, peak MB for half the log, peak
    MB for all of it, and the seconds and events of the cold and of the warm catch-up).
    """
    scans: list[float] = []

    def scan() -> int:
        """One plain scan, timed; the events it read."""
        with psycopg.connect(url, autocommit=True) as conn:
            started = time.perf_counter()
            read = 0
            with conn.cursor(name="scan") as cur, conn.transaction():
                cur.itersize = 10_000
                cur.execute(f"SELECT * FROM {name}.ledger_events ORDER BY notification_id")
                for _ in cur:
                    read += 1
            scans.append(time.perf_counter() - started)
        return read

    events = scan()
    halves: list[float] = []
    wholes: list[float] = []
    rebuilds = []
    colds: list[tuple[float, int]] = []
    warms: list[tuple[float, int]] = []
    for stop in [events // 2] * BEST_OF + [events] * BEST_OF:
        done = subprocess.run(
            [sys.executable, "-c", REBUILD, f"{url}?schema={name}", str(stop)],
            capture_output=True, check=True, text=True,
        )  # fmt: skip
        spent, peak = done.stdout.split()
        (wholes if stop == events else halves).append(int(peak) / 1024)
        if stop == events:
            rebuilds.append(float(spent))
            scan()
            continue
        done = subprocess.run(
            [sys.executable, "-c", CATCH_UP, f"{url}?schema={name}", str(3 * events // 4)],
            capture_output=True, check=True, text=True,
        )  # fmt: skip
        cold, cold_moved, warm, warm_moved = done.stdout.split()
        colds.append((float(cold), int(cold_moved)))
        warms.append((float(warm), int(warm_moved)))
    best_cold = max(colds, key=lambda c: c[1] / c[0])
    best_warm = max(warms, key=lambda c: c[1] / c[0])
    caught = (*best_cold, *best_warm)
    return min(rebuilds), events, min(scans), max(halves), max(wholes), caught


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


def tree_cost(
    url: str, lines: list[tuple[int, bytes]], rounds: int = TREE_ROUNDS
) -> tuple[float, float]:
    """Seconds to append the same records in one process with the Merkle tree kept up
    to date, and with its upkeep switched off, each into an empty schema: the best of
    `rounds` of each, taken in turns, since the difference sought is smaller than what
    one run varies by on a shared machine."""
    timings: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(rounds):
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
                timings[keep_tree].append(time.perf_counter() - started)
                app.close()
    return min(timings[True]), min(timings[False])


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


WRK = shutil.which("wrk")
WRK_SECONDS = 10
WARM_UP = 2
# Score reads of random residents; a resident's list is filled in per run.
READ_LUA = """
local ids = {%(ids)s}
wrk.headers["Authorization"] = "Bearer %(token)s"
math.randomseed(7)
request = function()
  return wrk.format("GET", "/v1/citizens/" .. ids[math.random(#ids)] .. "/score")
end
"""
# Single appends of distinct records (thread, counter), each position acknowledged
# kept to check against the log afterwards.
APPEND_LUA = """
local ids = {%(ids)s}
local threads = {}
local counter = 0
tid = 0
function setup(thread)
  tid = tid + 1
  thread:set("tid", tid)
  table.insert(threads, thread)
end
function init(args)
  acked = {}
  others = 0
end
request = function()
  counter = counter + 1
  local body = string.format('{"type":"payment.recorded","citizen":"%%s",'
    .. '"authority":"tax-bureau","reference":"WRK-%(run)s-%%d-%%d",'
    .. '"occurred_on":"2026-06-30","kind":"tax_paid_on_time","amount":"10.00"}',
    ids[(counter * 7 + tid) %% #ids + 1], tid, counter)
  return wrk.format("POST", "/v1/records", {["Authorization"] = "Bearer %(token)s",
    ["Content-Type"] = "application/json"}, body)
end
response = function(status, headers, body)
  if status == 201 then
    table.insert(acked, string.match(body, '"position":(%%d+)'))
  else
    others = others + 1
  end
end
done = function(summary, latency, requests)
  local found, other = {}, 0
  for _, t in ipairs(threads) do
    for _, p in ipairs(t:get("acked")) do table.insert(found, p) end
    other = other + t:get("others")
  end
  io.write("acked " .. table.concat(found, ",") .. "\\n")
  io.write("others " .. other .. "\\n")
end
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def served(url: str | None, name: str = "ledger-bench") -> Iterator[tuple[int, int]]:
    """`ledger serve --workers 2` on a free loopback port, or with `url` None the server's
    bare Flask route, served the same way: (port, pid). Its connections to PostgreSQL
    carry `name`, so that their backends' time can be told apart."""
    port = _free_port()
    if url is None:
        command = [sys.executable, "-m", "scripts.service.server", "--bare", "--port",
                   str(port), "--workers", "2"]  # fmt: skip
    else:
        command = [LEDGER, "serve", "--port", str(port), "--workers", "2", "--db", url]
    process = subprocess.Popen(
        command, env={**os.environ, "PGAPPNAME": name},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for _ in range(150):
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
                connection.request("GET", "/healthz")
                if connection.getresponse().status == 200:
                    break
            except OSError:
                time.sleep(0.2)
        yield port, process.pid
    finally:
        process.terminate()
        process.wait(timeout=15)


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _family(pid: int) -> list[int]:
    """The process and all its descendants."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            parents.setdefault(parent, []).append(int(entry.name))
    found, todo = [pid], [pid]
    while todo:
        children = parents.get(todo.pop(), [])
        found += children
        todo += children
    return found


def _backends(postgres: str, name: str) -> list[int]:
    with psycopg.connect(postgres, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s", [name]
        ).fetchall()
    return [int(pid) for (pid,) in rows]


def wrk(
    port: int, connections: int, path: str = "/", script: str | None = None,
    postgres: str | None = None, served_pid: int | None = None, name: str = "ledger-bench",
    seconds: int = WRK_SECONDS,
) -> dict[str, Any]:  # fmt: skip
    """wrk, 2 threads, for `seconds`: requests/s, p50 and p99 in ms, the answers that
    were not 2xx, whatever the script printed, and where the CPU time went per
    request: the served processes, their PostgreSQL backends (when on this machine),
    and wrk itself."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as lua:
        lua.write(script or "")
        lua.flush()
        command = [WRK or "wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency",
                   *(["-s", lua.name] if script else []),
                   f"http://127.0.0.1:{port}{path}"]  # fmt: skip
        family = _family(served_pid) if served_pid else []
        backends = _backends(postgres, name) if postgres else []
        before = {pid: _cpu_seconds(pid) for pid in family + backends}
        own = os.times()
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        after = os.times()
        backends = _backends(postgres, name) if postgres else []
        spent = {pid: _cpu_seconds(pid) - before.get(pid, 0.0) for pid in family + backends}
    out = done.stdout
    figures: dict[str, Any] = {"rps": float(out.split("Requests/sec:")[1].split()[0])}
    for label, key in (("50%", "p50"), ("99%", "p99")):
        figures[key] = _ms(out.split(f" {label}")[1].split()[0])
    figures["not_2xx"] = int(out.split("Non-2xx or 3xx responses:")[1].split()[0]) if (
        "Non-2xx" in out) else 0  # fmt: skip
    figures["printed"] = {line.split(" ", 1)[0]: line.split(" ", 1)[1] for line in
                          out.splitlines() if line.startswith(("acked ", "others "))}  # fmt: skip
    requests = max(figures["rps"] * seconds, 1)
    wrk_cpu = after.children_user + after.children_system - own.children_user - (
        own.children_system)  # fmt: skip
    figures["cpu_us"] = {
        "service": 1e6 * sum(spent.get(pid, 0.0) for pid in family) / requests,
        "postgres": 1e6 * sum(spent.get(pid, 0.0) for pid in backends) / requests,
        "wrk": 1e6 * wrk_cpu / requests,
    }
    return figures


def _ms(text: str) -> float:
    for unit, scale in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
        if text.endswith(unit):
            return float(text.removesuffix(unit)) * scale
    return float(text)


def http_load(postgres: str, name: str) -> dict[str, Any]:
    """Score reads and concurrent single appends over real HTTP with wrk, each beside the
    bare Flask route served by the same server in the same run; {} without wrk."""
    if WRK is None:
        return {}
    target = f"{postgres}?schema={name}"
    views = ViewStore(target)
    store = TokenStore(views)
    now = datetime.now(UTC)
    reader = store.create("reader", None, None, now)[0]
    service = store.create("service", "tax-bureau", None, now)[0]
    residents = views.residents(policy.DEFAULT_POLICY)
    views.close()
    ids = ",".join(f'"{r}"' for r in residents)
    figures: dict[str, Any] = {}
    # Each server first answers for WARM_UP seconds, unmeasured: its pools and
    # prepared statements are made as they would be long since in service.
    with served(None) as (port, pid):
        wrk(port, 16, "/bare", seconds=WARM_UP)
        figures["bare16"] = wrk(port, 16, "/bare", served_pid=pid)
        figures["bare32"] = wrk(port, 32, "/bare", served_pid=pid)
    with served(target) as (port, pid):
        script = READ_LUA % {"ids": ids, "token": reader}
        wrk(port, 16, script=script, seconds=WARM_UP)
        figures["reads"] = wrk(port, 16, script=script, postgres=postgres, served_pid=pid)
        run = uuid.uuid4().hex[:8]
        script = APPEND_LUA % {"ids": ids, "token": service, "run": run}
        ledger = Ledger(target)
        head = ledger.reader.head()
        ledger.close()
        figures["appends"] = wrk(port, 32, script=script, postgres=postgres, served_pid=pid)
    printed = figures["appends"]["printed"]
    figures["stored"] = _stored_once(target, head, printed, f"WRK-{run}-")
    return figures


def _stored_once(url: str, after: int, printed: dict[str, str], prefix: str) -> str:
    """Whether every acknowledged append is in the log once, at the position it was
    acknowledged with (the log read from `after` on), and in how many transactions
    (a batch's records share their time of recording); what is wrong otherwise."""
    acked = [int(p) for p in printed.get("acked", "").split(",") if p]
    ledger = Ledger(url)
    held: dict[int, str] = {}
    batches: set[datetime] = set()
    try:
        while True:
            page = ledger.reader.page(after, 10_000)
            for e in page.records:
                if e.record.reference.startswith(prefix):
                    held[e.position] = e.record.reference
                    batches.add(e.recorded_at)
            if page.end == after:
                break
            after = page.end
    finally:
        ledger.close()
    grouped = f"{len(batches):,} group commits of {len(held) / max(len(batches), 1):.1f}"
    if len(set(acked)) != len(acked):
        return "no: a position was acknowledged twice"
    missing = [p for p in acked if p not in held]
    if missing:
        return f"no: {len(missing)} acknowledged positions hold no such record"
    twice = len(held) - len(set(held.values()))
    if twice:
        return f"no: {twice} records stored twice"
    return f"yes ({len(acked):,} acknowledged; {grouped} records on average)"


def http_ingest(postgres: str, records: list[dict[str, Any]], size: int) -> dict[str, float]:
    """One NDJSON request of `size` single-authority records (copies of the feed's tax
    payments under new references, onto its enrolments) against `ledger append` of
    the same file into a schema in the same state; the seconds of the request spent
    only receiving the body (the same body sent to the bare route)."""
    enrolments = [r for r in records if r["type"] == "citizen.enrolled"]
    payments = [r for r in records if r["authority"] == "tax-bureau"
                and r["type"] == "payment.recorded"]  # fmt: skip
    copies = [{**r, "reference": f"{r['reference']}-{n}"}
              for n in range(size // max(len(payments), 1) + 1) for r in payments]  # fmt: skip
    feed = b"".join(orjson.dumps(r) + b"\n" for r in copies[:size])
    figures: dict[str, float] = {"size": float(len(copies[:size]))}
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "payments.ndjson"
        path.write_bytes(feed)
        people = Path(folder) / "enrolments.ndjson"
        people.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in enrolments))
        with _fresh(postgres, people) as target:
            started = time.perf_counter()
            subprocess.run([LEDGER, "append", str(path), "--json", "--db", target],
                           capture_output=True, check=True)  # fmt: skip
            figures["ledger_append"] = figures["size"] / (time.perf_counter() - started)
        with _fresh(postgres, people) as target:
            views = ViewStore(target)
            token = TokenStore(views).create("service", "tax-bureau", None,
                                             datetime.now(UTC))[0]  # fmt: skip
            views.close()
            headers = {"Authorization": f"Bearer {token}",
                       "Content-Type": "application/x-ndjson"}  # fmt: skip
            with served(target) as (port, _):
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
                started = time.perf_counter()
                connection.request("POST", "/v1/records", body=feed, headers=headers)
                report = orjson.loads(connection.getresponse().read())
                figures["http"] = figures["size"] / (time.perf_counter() - started)
                figures["appended"] = float(report.get("appended", 0))
            with served(None) as (port, _):
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
                started = time.perf_counter()
                connection.request("POST", "/bare", body=feed, headers=headers)
                connection.getresponse().read()
                figures["receive_seconds"] = time.perf_counter() - started
    return figures


@contextmanager
def _fresh(postgres: str, enrolments: Path) -> Iterator[str]:
    """A schema with the demo authorities and the enrolments appended."""
    with schema(postgres) as name:
        target = f"{postgres}?schema={name}"
        register(target)
        subprocess.run([LEDGER, "append", str(enrolments), "--db", target],
                       capture_output=True, check=True)  # fmt: skip
        yield target


def http_rows(table: Table, figures: dict[str, Any], ingest: dict[str, float]) -> None:
    """The HTTP rows: each figure beside its baseline from the same run, and where a
    request's CPU time went."""
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
    receive = ingest["size"] / ingest["receive_seconds"]
    table.add_row(
        f"NDJSON over HTTP, one request of {ingest['size']:,.0f} records",
        f"{ingest['http']:,.0f} records/s ({ingest['appended']:,.0f} appended)",
        f"ledger append of the same file: {ingest['ledger_append']:,.0f} records/s",
        f"{ingest['http'] / ingest['ledger_append']:.2f} (target 0.80); receiving the "
        f"body alone: {ingest['receive_seconds']:.1f} s ({receive:,.0f} records/s)",
    )


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
            ingest, report = ledger_append(url, feed)
            ceiling, rows, row_size = plain_ceiling(postgres, name)
            routed, routed_count = partitioned_append(postgres, feed) if partitioned else (0, 0)
            projected, events, scan, half_peak, full_peak, caught = rebuild(postgres, name)
            read_rate, p50, p99 = reads(postgres, name)
            if not read_side:
                generated, verified, whole = proofs(postgres, name)
                served_figures = http_load(postgres, name)
        if not read_side:
            with schema(postgres) as name:
                url = f"{postgres}?schema={name}"
                register(url)
                spent = phases(url, list(enumerate(encoded, start=1)))
            ingest_figures = http_ingest(postgres, records, 100_000)
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
    if partitioned:
        routed_rate = routed_count / routed
        table.add_row(
            "ledger append into 16 partitions on 3 shards (3 databases, this server)",
            f"{routed_rate:,.0f} records/s", f"one database: {ingest_rate:,.0f} records/s",
            f"{routed_rate / ingest_rate:.2f} (target 0.90: routing costs under 10%)",
        )  # fmt: skip
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
            f"+{with_tree / without_tree - 1:.0%} (target under 15%)",
        )  # fmt: skip
        table.add_row("inclusion proofs, PostgreSQL", f"{generated:,.0f} generated/s",
                      f"{verified:,.0f} verified/s", "")  # fmt: skip
        table.add_row(
            "ledger verify of the whole log", f"{whole:,.0f} events/s",
            f"plain scan {scan_rate:,.0f} rows/s", f"{whole / scan_rate:.2f}",
        )  # fmt: skip
        http_rows(table, served_figures, ingest_figures)
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
