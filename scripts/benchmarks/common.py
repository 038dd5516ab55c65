"""What every benchmark shares: a scratch schema, a checkpoint, the demo authorities, and
where the machine's CPU time went while a phase ran."""

from __future__ import annotations

import os
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg

from ledger.application import Ledger
from scripts.demo import DEMO_AUTHORITIES
from scripts.drill.processes import cpu_ticks, descendants

LEDGER = str(Path(sys.executable).with_name("ledger"))


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


def cpu_seconds(pid: int) -> float:
    """The CPU time a running process has used so far."""
    return cpu_ticks(pid) / os.sysconf("SC_CLK_TCK")


def family(pid: int) -> list[int]:
    """The process and all its descendants."""
    return [pid, *(child for child, _ in descendants(pid))]


def machine_busy() -> float:
    """CPU seconds the machine's cores have spent busy since boot (Linux)."""
    fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


@dataclass
class Spent:
    """Where the machine's CPU time went while a phase ran: the phase's own processes
    (this one, the commands it ran and the workers it was told of) and the rest of the
    machine, which on a machine otherwise idle is mostly PostgreSQL's backends."""

    wall: float = 0.0
    machine: float = 0.0
    own: float = 0.0

    @property
    def cores_busy(self) -> float:
        return self.machine / self.wall if self.wall else 0.0

    def per(self, count: int) -> tuple[float, float, float]:
        """µs of CPU an item: in all, in the phase's own processes, in the rest."""
        rest = max(self.machine - self.own, 0.0)
        scale = 1e6 / max(count, 1)
        return self.machine * scale, self.own * scale, rest * scale


@contextmanager
def spending() -> Iterator[Spent]:
    """Measure a phase: the CPU time of this process and of every process it started
    (waited for or still running, as its workers may be), against the whole machine's."""
    spent = Spent()
    me = os.getpid()
    before = {pid: cpu_seconds(pid) for pid in family(me) if pid != me}
    times, busy, started = os.times(), machine_busy(), time.perf_counter()
    try:
        yield spent
    finally:
        after = os.times()
        spent.wall = time.perf_counter() - started
        spent.machine = machine_busy() - busy
        running = {pid: cpu_seconds(pid) for pid in family(me) if pid != me}
        # A child reaped meanwhile comes back whole in the children's times: what it had
        # used before the phase is taken off again.
        gone = sum(used for pid, used in before.items() if pid not in running)
        spent.own = (
            sum(used - before.get(pid, 0.0) for pid, used in running.items())
            - gone
            + (after.user + after.system + after.children_user + after.children_system)
            - (times.user + times.system + times.children_user + times.children_system)
        )
