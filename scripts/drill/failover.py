"""The failover drill: one shard replicated by pg_auto_failover loses its primary
under a load of appends, and the ledger goes on through the promoted standby.

A monitor and two PostgreSQL nodes run on loopback ports from a temporary folder,
with synchronous replication (pg_auto_failover's default with one standby). One
ledger, opened once on the shard's multi-host URL, appends a generated feed in small
batches, waiting out the outage (its `patience`) instead of failing. A third of the
way in, the primary's keeper and postmaster are killed with SIGKILL; the monitor
promotes the standby, libpq finds it (target_session_attrs=read-write), and the same
ledger object goes on. Afterwards every acknowledged record must be in the log once,
and `ledger verify` must pass.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import psycopg

from ledger.application import Ledger
from ledger.errors import LedgerError
from scripts.demo import DEMO_AUTHORITIES, DEMO_UNTIL, Population
from scripts.drill.cluster import PG_BIN, free_port
from scripts.drill.processes import descendants, kill, wait_gone

AUTOCTL = "pg_autoctl"
SETPRIV = shutil.which("setpriv") or "setpriv"
BATCH = 50
# How long the ledger waits for a database that stopped answering: a failover takes
# seconds; this bounds a drill whose standby is never promoted.
PATIENCE = 60.0
MONITOR_SETTINGS = {
    "health_check_period": "1s", "health_check_timeout": "1s",
    "health_check_max_retries": "1", "health_check_retry_delay": "1s",
    "node_considered_unhealthy_timeout": "3s", "primary_demote_timeout": "3s",
}  # fmt: skip


class FailoverError(RuntimeError):
    """The replicated shard could not be set up, or the drill could not run."""


def missing() -> str | None:
    """Why the drill cannot run on this machine, or None if it can."""
    if shutil.which(AUTOCTL) is None:
        return (
            "pg_autoctl is not installed (Debian: apt-get install postgresql-15-auto-failover "
            "pg-auto-failover-cli)"
        )
    if not (PG_BIN / "pg_ctl").is_file():
        return f"{PG_BIN / 'pg_ctl'} is missing"
    if shutil.which("setpriv") is None:
        return "setpriv is not installed (Debian: util-linux)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "there is no postgres user to run the servers as"
    return None


@dataclass
class Figures:
    """What the drill counts."""

    acknowledged: set[tuple[str, str]] = field(default_factory=set)
    stored: int = 0
    lost: int = 0
    doubled: int = 0
    seconds_without_writes: float = 0.0
    promoted_after: float | None = None
    states: dict[str, str] = field(default_factory=dict)
    retries: int = 0
    verified: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "acknowledged": len(self.acknowledged), "stored": self.stored, "lost": self.lost,
            "doubled": self.doubled,
            "seconds_without_writes": round(self.seconds_without_writes, 2),
            "standby_promoted_after": self.promoted_after and round(self.promoted_after, 2),
            "states": self.states, "retries": self.retries, "verified": self.verified,
        }  # fmt: skip


class Shard:
    """A monitor and two nodes, each a `pg_autoctl run` in a process group of its own."""

    def __init__(self, say: Callable[[str], None]) -> None:
        reason = missing()
        if reason is not None:
            raise FailoverError(reason)
        self.say = say
        self.folder = Path(tempfile.mkdtemp(prefix="ledger-failover-"))
        self.ports = {name: free_port() for name in ("monitor", "n1", "n2")}
        self.runs: dict[str, subprocess.Popen[bytes]] = {}
        self._as_owner: list[str] = []
        self._owner_env: dict[str, str] = {}
        # A keeper told by the kernel to stop when this process dies, however it dies,
        # stops its server too (setpriv execs it: no process in between to die instead).
        self._ending_with_this = [str(SETPRIV), "--pdeathsig", "TERM", "--"]
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(self.folder, owner.pw_uid, owner.pw_gid)
            self._as_owner = [str(shutil.which("runuser")), "-u", "postgres", "--"]
            self._ending_with_this[-1:-1] = ["--reuid", "postgres", "--regid", "postgres",
                                             "--init-groups"]  # fmt: skip
            # As runuser gives the keepers' creation: their configuration is under HOME.
            self._owner_env = {"HOME": owner.pw_dir, "USER": "postgres", "LOGNAME": "postgres"}
        self._env = {**os.environ, "PATH": f"{PG_BIN}:{os.environ.get('PATH', '')}",
                     "PG_CONFIG": str(PG_BIN / "pg_config")}  # fmt: skip

    @property
    def url(self) -> str:
        """The shard as the ledger is given it: both nodes, libpq finds the primary."""
        nodes = ",".join(f"127.0.0.1:{self.ports[n]}" for n in ("n1", "n2"))
        return f"postgresql://postgres@{nodes}/ledger?target_session_attrs=read-write"

    def _autoctl(self, *argv: str, timeout: float = 120) -> str:
        done = subprocess.run(  # noqa: S603 - pg_autoctl, arguments made here
            [*self._as_owner, AUTOCTL, *argv], capture_output=True, text=True,
            timeout=timeout, check=False, env=self._env, cwd=self.folder,
            start_new_session=True,
        )  # fmt: skip
        if done.returncode != 0:
            raise FailoverError(f"pg_autoctl {argv[0]} {argv[1]} failed: {done.stderr[-800:]}")
        return done.stdout

    def _run(self, name: str) -> None:
        log = (self.folder / f"{name}.log").open("wb")
        self.runs[name] = subprocess.Popen(  # noqa: S603 - pg_autoctl, arguments made here
            [*self._ending_with_this, AUTOCTL, "run", "--pgdata", str(self.folder / name)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**self._env, **self._owner_env},
            cwd=self.folder, start_new_session=True,
        )  # fmt: skip
        log.close()

    def _common(self, name: str) -> list[str]:
        return [
            "--pgdata", str(self.folder / name), "--pgport", str(self.ports[name]),
            "--hostname", "127.0.0.1", "--auth", "trust", "--no-ssl",
            "--pgctl", str(PG_BIN / "pg_ctl"),
        ]  # fmt: skip

    def create(self) -> None:
        """The monitor, the primary, then the standby, each running once created."""
        self.say(f"the servers' data: {self.folder}")
        self.say(f"creating the monitor on 127.0.0.1:{self.ports['monitor']}")
        self._autoctl("create", "monitor", *self._common("monitor"))
        self._run("monitor")
        self._tune_monitor()
        monitor = (
            f"postgres://autoctl_node@127.0.0.1:{self.ports['monitor']}/pg_auto_failover"
            "?sslmode=disable"
        )
        for name, role in (("n1", "primary"), ("n2", "standby")):
            self.say(f"creating node {name} on 127.0.0.1:{self.ports[name]} as the {role}")
            deadline = time.monotonic() + 60
            while True:
                try:
                    self._autoctl("create", "postgres", *self._common(name), "--monitor",
                                  monitor, "--dbname", "ledger", "--name", name)  # fmt: skip
                    break
                except FailoverError:
                    # The monitor may not accept nodes for a moment after it starts.
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(1)
            self._run(name)
            # Alone, the first node is "single"; with a standby, the two are primary
            # and secondary, and commits wait for the standby.
            self.wait_for({"n1": "single"} if name == "n1" else
                          {"n1": "primary", "n2": "secondary"})  # fmt: skip

    def _tune_monitor(self, seconds: float = 30) -> None:
        """A failover in seconds: the monitor's defaults wait some 50 s (20 s before it
        deems the primary unhealthy, then 30 s for the primary to demote itself), which
        production may want; on loopback, a few seconds of each show the same thing."""
        url = f"postgresql://postgres@127.0.0.1:{self.ports['monitor']}/pg_auto_failover"
        deadline = time.monotonic() + seconds
        while True:
            try:
                with psycopg.connect(url, autocommit=True, connect_timeout=2) as conn:
                    for name, value in MONITOR_SETTINGS.items():
                        conn.execute(f"ALTER SYSTEM SET pgautofailover.{name} = '{value}'")
                    conn.execute("SELECT pg_reload_conf()")
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise FailoverError(f"the monitor did not answer in {seconds:.0f}s") from None
                time.sleep(0.5)

    def states(self) -> dict[str, str]:
        """Each node's reported state, as the monitor has it."""
        out = self._autoctl("show", "state", "--pgdata", str(self.folder / "monitor"),
                            "--json", timeout=30)  # fmt: skip
        return {node["nodename"]: node["current_group_state"] for node in orjson.loads(out)}

    def wait_for(self, wanted: dict[str, str], seconds: float = 90) -> float:
        """Wait until the nodes report these states; the seconds it took."""
        started = time.monotonic()
        while True:
            try:
                found = self.states()
            except (FailoverError, orjson.JSONDecodeError, KeyError):
                found = {}
            if all(found.get(name) == state for name, state in wanted.items()):
                return time.monotonic() - started
            if time.monotonic() - started > seconds:
                raise FailoverError(f"after {seconds:.0f}s the nodes are {found}, not {wanted}")
            time.sleep(0.5)

    def kill_primary(self) -> None:
        """SIGKILL to n1's keeper and its postmaster, as when the machine dies."""
        run = self.runs["n1"]
        members = [run.pid, *(child for child, _ in descendants(run.pid))]
        pid_file = self.folder / "n1" / "postmaster.pid"
        postmaster = int(pid_file.read_text().split("\n", 1)[0])
        members += [postmaster, *(child for child, _ in descendants(postmaster))]
        for pid in members:
            kill(pid, signal.SIGKILL)
        wait_gone(members, 5)

    def destroy(self) -> None:
        """Stop every server and remove the folder."""
        for name, run in self.runs.items():
            if run.poll() is None:
                try:
                    os.killpg(run.pid, signal.SIGTERM)
                except ProcessLookupError:
                    continue
                try:
                    run.wait(20)
                except subprocess.TimeoutExpired:
                    os.killpg(run.pid, signal.SIGKILL)
                    run.wait(5)
            data = self.folder / name / "postmaster.pid"
            if data.exists():
                pid = int(data.read_text().split("\n", 1)[0])
                for left in [pid, *(child for child, _ in descendants(pid))]:
                    kill(left, signal.SIGKILL)
        shutil.rmtree(self.folder, ignore_errors=True)


def drill(citizens: int, say: Callable[[str], None]) -> Figures:
    """Run the drill; its figures."""
    shard = Shard(say)
    try:
        shard.create()
        return _load_through_failover(shard, citizens, say)
    finally:
        shard.destroy()


def _load_through_failover(shard: Shard, citizens: int, say: Callable[[str], None]) -> Figures:
    figures = Figures()
    records = Population(citizens, 11, DEMO_UNTIL).records()
    batches = [records[i : i + BATCH] for i in range(0, len(records), BATCH)]
    ledger = Ledger(shard.url, patience=PATIENCE)
    try:
        for spec in DEMO_AUTHORITIES:
            ledger.register_authority(spec.authority_id, spec.name, list(spec.may_issue))
        say(f"appending {len(records)} records in batches of {BATCH}")
        kill_at = len(batches) // 3
        killed_at = None
        last_write = time.monotonic()
        for number, batch in enumerate(batches):
            if number == kill_at:
                say("kill -9 of the primary's keeper and postmaster")
                shard.kill_primary()
                killed_at = time.monotonic()
                promoted = threading.Thread(
                    target=lambda: setattr(figures, "promoted_after", shard.wait_for(
                        {"n2": "wait_primary"}, PATIENCE)), daemon=True,
                )  # fmt: skip
                promoted.start()
            report = _append(ledger, batch, figures)
            now = time.monotonic()
            if killed_at is not None:
                figures.seconds_without_writes = max(
                    figures.seconds_without_writes, now - last_write
                )
            last_write = now
            figures.retries += report.retries
            acknowledged = {line for line, _ in report.positions} | {
                d.line for d in report.duplicates
            }
            for line in acknowledged:
                record = batch[line - 1]
                figures.acknowledged.add((record["authority"], record["reference"]))
        figures.states = shard.states()
        _count(ledger, figures)
    finally:
        ledger.close()
    done = subprocess.run(  # noqa: S603 - the ledger's own command
        [str(Path(sys.executable).with_name("ledger")), "verify", "--db", shard.url],
        capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    figures.verified = done.returncode == 0
    say((done.stdout or done.stderr).strip())
    return figures


def _append(ledger: Ledger, batch: list[dict[str, Any]], figures: Figures) -> Any:
    """One batch, sent again after an outage longer than the ledger's patience (the
    ledger object stays open: it is never restarted)."""
    while True:
        try:
            return ledger.append_records(batch)
        except LedgerError:
            figures.retries += 1
            time.sleep(0.5)


def _count(ledger: Ledger, figures: Figures) -> None:
    """Every record in the log once, against what was acknowledged."""
    seen: Counter[tuple[str, str]] = Counter()
    after = 0
    while True:
        page = ledger.reader.page(after, 5000)
        if page.end == after:
            break
        seen.update((e.record.authority, e.record.reference) for e in page.records)
        after = page.end
    figures.stored = sum(seen.values())
    figures.lost = sum(1 for key in figures.acknowledged if key not in seen)
    figures.doubled = sum(1 for count in seen.values() if count > 1)
