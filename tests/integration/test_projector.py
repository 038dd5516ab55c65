"""`ledger project` as an operator runs it, in real processes: one writer at a time, a
standby that takes over, connections cut under a follower, signals, a parent that dies,
and the worker processes that share a follower's work ending with it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from ledger.application import Ledger
from projections import policy
from projections.runner import tracking_name
from projections.store import ViewStore
from scripts.drill.processes import alive, children
from tests.builders import append, enrolled, fine, register_authorities

ROOT = Path(__file__).resolve().parents[2]
POLICIES = [policy.load(name) for name in policy.available()]


class Process:
    """A `ledger project` child whose output goes to files, read while it runs."""

    def __init__(self, tmp_path: Path, name: str, args: list[str], env: dict[str, str]) -> None:
        self.out = tmp_path / f"{name}.out"
        self.err = tmp_path / f"{name}.err"
        with self.out.open("wb") as out, self.err.open("wb") as err:
            self.popen = subprocess.Popen(
                [sys.executable, "-m", "scripts.cli", "project", *args],
                cwd=ROOT, stdout=out, stderr=err, env={**os.environ, **env},
            )  # fmt: skip

    def stderr(self) -> str:
        return self.err.read_text()

    def output(self) -> str:
        return self.out.read_text() + self.err.read_text()

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait(timeout=10)


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., Process]]:
    """Starts projector processes; any still running are killed afterwards."""
    started: list[Process] = []

    def starter(url: str, *args: str, env: dict[str, str] | None = None) -> Process:
        # The URL goes by environment: a password must not show on a command line.
        env = {"LEDGER_DATABASE_URL": url, **(env or {})}
        process = Process(tmp_path, f"p{len(started)}", list(args), env)
        started.append(process)
        return process

    yield starter
    for process in started:
        process.stop()


@pytest.fixture
def seeded(ledger: Ledger) -> Ledger:
    register_authorities(ledger)
    assert append(ledger, enrolled(), fine("TP-1")).rejected == []
    return ledger


@pytest.fixture
def views(store_url: str) -> Iterator[ViewStore]:
    store = ViewStore(store_url)
    yield store
    store.close()


def caught_up(ledger: Ledger, views: ViewStore) -> bool:
    positions = views.positions()
    head = ledger.max_position()
    return all(positions.get(tracking_name(p), 0) == head for p in POLICIES)


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout}s: {what}")


def test_a_second_projector_beside_a_follower_says_so_and_exits_2(
    seeded: Ledger, views: ViewStore, store_url: str, start: Callable[..., Process]
) -> None:
    follower = start(store_url, "--follow", "--interval", "0.2")
    wait_for(lambda: caught_up(seeded, views), "the follower catches up")
    second = start(store_url, "--wait", "0.5")
    assert second.popen.wait(timeout=30) == 2
    lines = second.stderr().strip().splitlines()
    assert len(lines) == 1, lines
    assert "another projector is running" in lines[0]
    assert follower.popen.poll() is None
    assert "Traceback" not in follower.output() + second.output()


def test_a_standby_takes_over_when_the_running_projector_is_killed(
    seeded: Ledger, views: ViewStore, store_url: str, start: Callable[..., Process]
) -> None:
    first = start(store_url, "--follow", "--interval", "0.2")
    wait_for(lambda: caught_up(seeded, views), "the first follower catches up")
    standby = start(store_url, "--follow", "--interval", "0.2")
    wait_for(lambda: "standby" in standby.stderr(), "the second one says it is a standby")
    first.popen.send_signal(signal.SIGKILL)
    first.popen.wait(timeout=10)
    assert append(seeded, fine("TP-2"), fine("TP-3")).rejected == []
    wait_for(lambda: caught_up(seeded, views), "the standby catches up the new records")
    assert standby.popen.poll() is None
    assert "taking over" in standby.stderr()
    assert "Traceback" not in standby.output()


@pytest.mark.postgres
def test_a_follower_whose_connections_are_cut_keeps_going(
    postgres_schema_url: str, start: Callable[..., Process]
) -> None:
    url, password = _with_password(postgres_schema_url)
    ledger = Ledger(url)
    views = ViewStore(url)
    try:
        register_authorities(ledger)
        assert append(ledger, enrolled()).rejected == []
        name = f"projector-test-{uuid.uuid4().hex[:8]}"
        follower = start(url, "--follow", "--interval", "0.2", env={"PGAPPNAME": name})
        wait_for(lambda: caught_up(ledger, views), "the follower catches up")
        for n in range(2):
            assert _terminate(postgres_schema_url, name) >= 2
            assert append(ledger, fine(f"TP-{n}")).rejected == []
            wait_for(lambda: caught_up(ledger, views), f"catches up after cut {n + 1}")
        assert follower.popen.poll() is None
        said = follower.stderr()
        assert "Traceback" not in said
        assert password not in said
        assert said.strip(), "says what happened"
        assert all(line.startswith("project: ") for line in said.strip().splitlines()), said
    finally:
        views.close()
        ledger.close()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_ends_a_follower_and_its_standby_cleanly(
    seeded: Ledger,
    views: ViewStore,
    store_url: str,
    start: Callable[..., Process],
    sig: signal.Signals,
) -> None:
    follower = start(store_url, "--follow", "--interval", "0.2")
    wait_for(lambda: caught_up(seeded, views), "the follower catches up")
    standby = start(store_url, "--follow", "--interval", "0.2")
    wait_for(lambda: "standby" in standby.stderr(), "the second one says it is a standby")
    for process in (standby, follower):
        process.popen.send_signal(sig)
        assert process.popen.wait(timeout=5) in (0, 130)
        assert "Traceback" not in process.output()


def test_a_follower_started_by_a_parent_ends_with_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/ledger.db"
    ledger = Ledger(url)
    views = ViewStore(url)
    register_authorities(ledger)
    assert append(ledger, enrolled()).rejected == []
    parent = subprocess.Popen(  # a stand-in for `ledger serve`
        [sys.executable, "-c",
         "import os, subprocess, sys, time\n"
         "child = subprocess.Popen([sys.executable, '-m', 'scripts.cli', 'project', "
         "'--follow', '--interval', '0.2'],\n"
         "    env={**os.environ, 'LEDGER_PARENT_PID': str(os.getpid())})\n"
         "print(child.pid, flush=True)\n"
         "time.sleep(60)\n"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "LEDGER_DATABASE_URL": url},
    )  # fmt: skip
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    try:
        wait_for(lambda: caught_up(ledger, views), "the follower catches up")
        parent.kill()
        parent.wait(timeout=10)
        wait_for(lambda: not alive(child), "the follower ends with its parent", timeout=10)
    finally:
        if alive(child):
            os.kill(child, signal.SIGKILL)
        views.close()
        ledger.close()


@pytest.mark.parametrize("ending", ["SIGTERM", "SIGKILL"])
def test_a_followers_workers_end_with_it(
    seeded: Ledger,
    views: ViewStore,
    store_url: str,
    start: Callable[..., Process],
    ending: str,
) -> None:
    """Told to stop, the follower ends its workers before it exits; killed, it leaves
    them to see it gone and end by themselves."""
    follower = start(store_url, "--follow", "--interval", "0.2", "--workers", "2")
    wait_for(lambda: caught_up(seeded, views), "the follower catches up")
    assert append(seeded, fine("TP-2")).rejected == []
    wait_for(lambda: caught_up(seeded, views), "the follower's workers fold a new record")
    workers = [pid for pid in children(follower.popen.pid) if alive(pid)]
    assert len(workers) == 2
    follower.popen.send_signal(getattr(signal, ending))
    assert follower.popen.wait(timeout=10) in ((0, 130) if ending == "SIGTERM" else (-9,))
    wait_for(lambda: not any(alive(pid) for pid in workers), "the workers end", timeout=10)
    if ending == "SIGTERM":
        assert "Traceback" not in follower.output()


def _with_password(url: str) -> tuple[str, str]:
    """The URL with a password in it (trust authentication ignores it), and the password."""
    parts = urlsplit(url)
    if parts.password:
        return url, parts.password
    password = "never-shown-" + uuid.uuid4().hex[:6]
    host = parts.netloc.rsplit("@", 1)[-1]
    netloc = f"{parts.username or 'postgres'}:{password}@{host}"
    return urlunsplit(parts._replace(netloc=netloc)), password


def _terminate(url: str, application_name: str) -> int:
    """Cut every connection the projector holds; how many were cut."""
    base = url.split("?", 1)[0]
    with psycopg.connect(base, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            [application_name],
        ).fetchall()
    return sum(1 for (done,) in rows if done)
