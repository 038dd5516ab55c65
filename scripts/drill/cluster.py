"""A throwaway PostgreSQL cluster for the fault drill.

It has its own data folder, socket folder and loopback port, so the drill may kill -9
its postmaster and start it again; it never touches any other server. Run as root,
its commands run as the postgres user, since PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from scripts.drill.processes import descendants, kill, state, wait_gone


def _pg_bin() -> Path:
    """PostgreSQL's programs: $LEDGER_DRILL_PG_BIN, else Debian's 15, else its newest,
    else wherever initdb is on the PATH."""
    if chosen := os.environ.get("LEDGER_DRILL_PG_BIN"):
        return Path(chosen)
    debian = Path("/usr/lib/postgresql")
    versions = sorted(
        (p for p in debian.glob("*/bin") if (p / "initdb").is_file() and p.parent.name.isdigit()),
        key=lambda p: (p.parent.name != "15", -int(p.parent.name)),
    )
    if versions:
        return versions[0]
    found = shutil.which("initdb")
    return Path(found).parent if found else debian / "15" / "bin"


PG_BIN = _pg_bin()
SHARED_PORT = 5432


class ClusterError(RuntimeError):
    """The throwaway cluster could not be made, started or stopped."""


def free_port() -> int:
    """A loopback port nobody listens on now, never the shared server's."""
    while True:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if port != SHARED_PORT:
            return port


def missing() -> str | None:
    """Why a cluster cannot be made on this machine, or None if it can."""
    for tool in ("initdb", "pg_ctl", "postgres"):
        if not (PG_BIN / tool).is_file():
            return f"{PG_BIN / tool} is missing (install PostgreSQL, or set LEDGER_DRILL_PG_BIN)"
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            return "runuser is missing: as root the server must run as the postgres user"
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "there is no postgres user to run the server as"
    return None


class Cluster:
    """One PostgreSQL cluster in a temporary folder, trusting loopback connections."""

    def __init__(self) -> None:
        reason = missing()
        if reason is not None:
            raise ClusterError(reason)
        self.folder = Path(tempfile.mkdtemp(prefix="ledger-drill-"))
        self.data = self.folder / "data"
        self.log = self.folder / "postgres.log"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self._as_owner: list[str] = []
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(self.folder, owner.pw_uid, owner.pw_gid)
            self._as_owner = [str(shutil.which("runuser")), "-u", "postgres", "--"]

    def _run(self, *argv: str, timeout: float = 60) -> None:
        try:
            done = subprocess.run(  # noqa: S603 - PostgreSQL's own tools, arguments made here
                [*self._as_owner, *argv], capture_output=True, text=True, timeout=timeout,
                check=False, start_new_session=True,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            name = f"{Path(argv[0]).name} {argv[-1]}"
            raise ClusterError(f"{name} took over {timeout:.0f}s") from None
        if done.returncode != 0:
            detail = (done.stderr or done.stdout).strip()[-600:]
            raise ClusterError(f"{Path(argv[0]).name} {argv[-1]} failed: {detail}")

    def create(self) -> None:
        """initdb, then start."""
        self._run(
            str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust",
            "-E", "UTF8", "--locale=C", "--no-sync",
        )  # fmt: skip
        self.start()

    def start(self, timeout: float = 60) -> None:
        """Start the server and wait until it accepts connections (crash recovery included)."""
        # fsync off only spares the disk: a kill -9 of the server still loses nothing the
        # kernel was given, so a commit it acknowledged survives, as on a real crash.
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 "
            f"-c unix_socket_directories={self.folder} -c fsync=off -c max_connections=300"
        )
        self._run(
            str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w",
            "-t", str(int(timeout)), "-o", options, "start", timeout=timeout + 10,
        )  # fmt: skip

    def postmaster(self) -> int | None:
        """The postmaster's process id, from its lock file."""
        try:
            return int((self.data / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None

    def crash(self) -> int:
        """kill -9 of the postmaster; its backends are given 5 s to notice and end, as they
        do, before they are killed too. Returns the postmaster's id."""
        pid = self.postmaster()
        if pid is None or state(pid) is None:
            raise ClusterError("the server is not running")
        backends = [child for child, _ in descendants(pid)]
        kill(pid, signal.SIGKILL)
        for left in wait_gone([pid, *backends], 5):
            kill(left)
        wait_gone([pid, *backends], 5)
        if state(pid) == "Z":
            # Nobody reaps it in some containers; a zombie's pid in the lock files would
            # look like a running server and stop the restart.
            (self.data / "postmaster.pid").unlink(missing_ok=True)
            (self.folder / f".s.PGSQL.{self.port}.lock").unlink(missing_ok=True)
        return pid

    def stop(self) -> None:
        """Stop at once (immediate shutdown), or kill it if that fails."""
        pid = self.postmaster()
        if pid is None or state(pid) in (None, "Z"):
            return
        with contextlib.suppress(ClusterError):
            self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w",
                      "-t", "20", "stop", timeout=30)  # fmt: skip
        if state(pid) not in (None, "Z"):
            backends = [child for child, _ in descendants(pid)]
            kill(pid)
            for left in wait_gone(backends, 2):
                kill(left)

    def destroy(self) -> None:
        """Stop the server and remove its folder."""
        try:
            self.stop()
        finally:
            deadline = time.monotonic() + 5
            while self.folder.exists() and time.monotonic() < deadline:
                shutil.rmtree(self.folder, ignore_errors=True)
