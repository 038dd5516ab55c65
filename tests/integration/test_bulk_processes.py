"""`ledger append` of a long feed as real processes: stopped, killed or failing, it
ends promptly, says why, and leaves no writer process or connection behind."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import psycopg
import pytest

from ledger.application import Ledger
from ledger.bulk import WRITERS
from ledger.domain.identity import make_resident_id
from tests.builders import enrolled, fine, register_authorities

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parents[2]
LINES = 24_000  # long enough to be sharded and to be stopped half-way
PROMPT = 5.0


def _citizen(n: int) -> str:
    return make_resident_id("110105", date(1970, 1, 1) + timedelta(days=n // 1000), n % 1000)


def _write_feed(path: Path) -> None:
    with path.open("w") as out:
        for n in range(LINES // 2):
            citizen = _citizen(n)
            out.write(json.dumps(enrolled(citizen)) + "\n")
            out.write(json.dumps(fine(f"TP-{n}", citizen=citizen)) + "\n")


def _ppids() -> dict[int, tuple[int, str]]:
    """Every process's parent and state, from /proc."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        found[int(entry.name)] = (int(ppid), state)
    return found


def _descendants(root: int) -> set[int]:
    table = _ppids()
    found: set[int] = set()
    frontier = [root]
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, state) in table.items():
            if ppid == parent and state != "Z" and pid not in found:
                found.add(pid)
                frontier.append(pid)
    return found


def _cmdline(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _alive(pids: set[int]) -> set[int]:
    table = _ppids()
    return {pid for pid in pids if pid in table and table[pid][1] != "Z"}


def _until(check: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


def _admin(url: str) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(url.split("?", 1)[0], autocommit=True)


def _stored(url: str, schema: str) -> int:
    with _admin(url) as conn:
        row = conn.execute(f"SELECT count(*) FROM {schema}.ledger_events").fetchone()
    return int(str(row[0])) if row else 0


@dataclass
class Append:
    """A running `ledger append` and what it needs to be watched."""

    process: subprocess.Popen[bytes]
    url: str
    schema: str
    app_name: str
    before: int
    err: Path
    seen: set[int] = field(default_factory=set)

    def children(self) -> set[int]:
        """Its processes now (writers and multiprocessing's helper), remembered."""
        found = _descendants(self.process.pid)
        self.seen |= found
        return found

    def writers(self) -> set[int]:
        return {p for p in self.children() if "spawn_main" in _cmdline(p)}

    def connections(self) -> int:
        with _admin(self.url) as conn:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                (self.app_name,),
            ).fetchone()
        return int(str(row[0])) if row else 0

    def writing(self) -> set[int]:
        """Wait until every writer runs and one has stored a batch; all its children."""
        assert _until(
            lambda: len(self.writers()) == WRITERS and _stored(self.url, self.schema) > self.before,
            30,
        ), f"the append never got going: {self.stderr()}"
        return self.children()

    def wait(self, seconds: float) -> int | None:
        try:
            return self.process.wait(seconds)
        except subprocess.TimeoutExpired:
            return None

    def stderr(self) -> str:
        return self.err.read_text()


@pytest.fixture
def start_append(postgres_schema_url: str, tmp_path: Path) -> Iterator[Callable[[], Append]]:
    """Starts `ledger append` of a long feed in a session of its own; whatever is left
    of it is killed afterwards."""
    ledger = Ledger(postgres_schema_url)
    register_authorities(ledger)
    ledger.close()
    feed = tmp_path / "feed.ndjson"
    _write_feed(feed)
    schema = parse_qs(urlsplit(postgres_schema_url).query)["schema"][0]
    started: list[Append] = []

    def start() -> Append:
        before = _stored(postgres_schema_url, schema)
        app_name = f"bulk-test-{uuid.uuid4().hex[:8]}"
        err = tmp_path / "stderr"
        with err.open("wb") as stderr:
            process = subprocess.Popen(
                [sys.executable, "-m", "scripts.cli", "append", str(feed),
                 "--db", postgres_schema_url],
                cwd=ROOT, stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True,
                env={**os.environ, "PGAPPNAME": app_name},
            )  # fmt: skip
        append = Append(process, postgres_schema_url, schema, app_name, before, err)
        started.append(append)
        return append

    yield start
    for append in started:
        for pid in append.children() | append.seen | {append.process.pid}:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        append.process.wait()
        with _admin(postgres_schema_url) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = %s",
                (append.app_name,),
            )


@pytest.mark.parametrize(
    ("signum", "group", "code"),
    [(signal.SIGINT, True, 130), (signal.SIGINT, False, 130), (signal.SIGTERM, False, 143)],
    ids=["ctrl-c", "sigint", "sigterm"],
)
def test_a_stopped_append_ends_every_process_and_says_what_is_stored(
    start_append: Callable[[], Append], signum: int, group: bool, code: int
) -> None:
    append = start_append()
    children = append.writing()
    if group:
        os.killpg(append.process.pid, signum)  # as a terminal's Ctrl-C does
    else:
        os.kill(append.process.pid, signum)

    assert append.wait(PROMPT) == code, append.stderr()
    assert _until(lambda: not _alive(children), 1), "processes were left behind"
    lines = [line for line in append.stderr().splitlines() if line.strip()]
    assert len(lines) == 1, append.stderr()
    assert signal.Signals(signum).name in lines[0]
    assert "acknowledged" in lines[0]
    assert "same feed again" in lines[0]


def test_a_killed_append_takes_its_writers_and_their_connections_with_it(
    start_append: Callable[[], Append],
) -> None:
    append = start_append()
    children = append.writing()
    assert append.connections() > 0
    append.process.kill()
    append.process.wait()

    assert _until(lambda: not _alive(children), PROMPT), "processes outlived the killed append"
    assert _until(lambda: append.connections() == 0, 2), "connections outlived the writers"


def test_a_database_error_in_a_writer_stops_the_append_with_that_error(
    start_append: Callable[[], Append],
) -> None:
    append = start_append()
    children = append.writing()
    with _admin(append.url) as conn:
        # As a full disk would: every later insert fails, and no writer can repair it.
        conn.execute(
            f"CREATE FUNCTION {append.schema}.refuse() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'no space left for the test'; END $$"
        )
        conn.execute(
            f"CREATE TRIGGER refuse BEFORE INSERT ON {append.schema}.ledger_events "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {append.schema}.refuse()"
        )

    assert append.wait(PROMPT) == 2, append.stderr()
    assert _until(lambda: not _alive(children), 1), "processes were left behind"
    message = append.stderr()
    assert "no space left for the test" in message
    assert "Traceback" not in message


def test_a_writer_killed_by_a_signal_is_named_and_the_append_stops(
    start_append: Callable[[], Append],
) -> None:
    append = start_append()
    children = append.writing()
    os.kill(min(append.writers()), signal.SIGKILL)

    assert append.wait(PROMPT) == 2, append.stderr()
    assert _until(lambda: not _alive(children), 1), "processes were left behind"
    message = append.stderr()
    assert "was killed by SIGKILL" in message
    assert "Traceback" not in message
