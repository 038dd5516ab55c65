"""The read side's benchmarks: the rebuild against a plain scan, the catch-up against
the rebuild, in-process score reads, inclusion proofs and `ledger verify`."""

from __future__ import annotations

import random
import subprocess
import sys
import time
from typing import NamedTuple

import click
import psycopg

from ledger.application import Ledger
from ledger.transparency import merkle
from ledger.transparency.audit import Log, verify_log
from projections import policy
from projections.queries import Scores
from projections.store import ViewStore
from scripts.benchmarks.common import Spent

BEST_OF = 3

REBUILD = """
import sys
from ledger.application import Ledger
from projections import policy
from projections.runner import catch_up
from projections.store import ViewStore
from scripts.benchmarks.common import spending
url, stop = sys.argv[1], int(sys.argv[2])
app, store = Ledger(url), ViewStore(url)
with store.transaction() as tx:
    tx.execute("DELETE FROM projection_tracking")
with spending() as spent:
    catch_up(app, store, [policy.load(n) for n in policy.available()], stop_at=stop)
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across exec.
peak = next(line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM"))
print(spent.wall, peak, spent.machine, spent.own)
"""

CATCH_UP = """
import sys
from ledger.application import Ledger
from projections import policy
from projections.known import KnownFacts
from projections.runner import catch_up
from projections.store import ViewStore
from scripts.benchmarks.common import spending
app, store = Ledger(sys.argv[1]), ViewStore(sys.argv[1])
policies = [policy.load(n) for n in policy.available()]
known = KnownFacts(keep_shares=True)
figures = []
# Half the log behind in two halves: the first as a fresh `ledger project` meets it
# (every citizen read from the log), the second as a follower that wrote the first.
for stop in (int(sys.argv[2]), None):
    start = min(store.positions().values())
    with spending() as spent:
        reached = catch_up(app, store, policies, stop_at=stop, known=known)
    figures += [spent.wall, min(reached.values()) - start, spent.machine, spent.own]
known.close()
print(*figures)
"""


class CatchUp(NamedTuple):
    """One catch-up: its seconds, the events it moved on by, and where the machine's CPU
    went meanwhile."""

    seconds: float
    events: int
    spent: Spent

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


class Rebuilt(NamedTuple):
    """The rebuild and catch-up figures of one run of `rebuild`."""

    seconds: float
    events: int
    scan_seconds: float
    half_peak: float
    whole_peak: float
    spent: Spent
    cold: CatchUp
    warm: CatchUp


def rebuild(url: str, name: str) -> Rebuilt:
    """Projections of every policy from position zero, against a plain scan of the log,
    and the catch-up of projections that are half the log behind.

    Each rebuild runs in a process of its own, over half the log (after which the
    half-built projections catch up to the end in one process: the third quarter from
    cold, the last quarter with the facts it wrote kept, as a follower has them) and
    over all of it, so their peak memory can be compared. The rebuild of all the log
    and each catch-up are timed BEST_OF times, and the scan once more (before all, and
    after each rebuild of all the log, so that a slow spell of the machine meets both);
    the best of each is kept, as the machine's speed wanders by a fifth from run to
    run. Where the machine's CPU went is kept for the fastest rebuild and catch-ups.
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
    rebuilds: list[tuple[float, Spent]] = []
    colds: list[CatchUp] = []
    warms: list[CatchUp] = []
    for stop in [events // 2] * BEST_OF + [events] * BEST_OF:
        done = subprocess.run(
            [sys.executable, "-c", REBUILD, f"{url}?schema={name}", str(stop)],
            capture_output=True, check=True, text=True,
        )  # fmt: skip
        took, peak, machine, own = done.stdout.split()
        (wholes if stop == events else halves).append(int(peak) / 1024)
        if stop == events:
            rebuilds.append((float(took), Spent(float(took), float(machine), float(own))))
            scan()
            continue
        done = subprocess.run(
            [sys.executable, "-c", CATCH_UP, f"{url}?schema={name}", str(3 * events // 4)],
            capture_output=True, check=True, text=True,
        )  # fmt: skip
        figures = done.stdout.split()
        for n, found in ((0, colds), (4, warms)):
            wall, moved, machine, own = figures[n : n + 4]
            found.append(CatchUp(float(wall), int(moved),
                                 Spent(float(wall), float(machine), float(own))))  # fmt: skip
    seconds, spent = min(rebuilds, key=lambda r: r[0])
    return Rebuilt(seconds, events, min(scans), max(halves), max(wholes), spent,
                   max(colds, key=lambda c: c.rate), max(warms, key=lambda c: c.rate))  # fmt: skip


def reads(url: str, name: str, count: int = 3000) -> tuple[float, float, float, float]:
    """In-process score reads of random citizens: (reads/s, p50 ms, p99 ms, µs of this
    process's CPU a read)."""
    app = Ledger(f"{url}?schema={name}")
    store = ViewStore(f"{url}?schema={name}")
    scores = Scores(app, store)
    residents = store.residents(policy.DEFAULT_POLICY)
    rng = random.Random(7)
    latencies = []
    cpu = time.process_time()
    for _ in range(count):
        citizen = rng.choice(residents)
        started = time.perf_counter()
        scores.score(citizen)
        latencies.append(time.perf_counter() - started)
    cpu = time.process_time() - cpu
    app.close()
    store.close()
    latencies.sort()
    return (count / sum(latencies), 1000 * latencies[len(latencies) // 2],
            1000 * latencies[int(len(latencies) * 0.99)], 1e6 * cpu / count)  # fmt: skip


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
