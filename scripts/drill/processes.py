"""The drill's child processes: each started in a process group of its own, so that it
and whatever it started can be found, counted and ended by that group's id.

Linux only: process trees are read from /proc.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path


def children(pid: int) -> list[int]:
    """The direct children of a process (of every one of its threads)."""
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                found.extend(int(p) for p in (task / "children").read_text().split())
    return found


def descendants(pid: int) -> list[tuple[int, int]]:
    """Every process below `pid`, with its depth (1 for a child)."""
    found: list[tuple[int, int]] = []
    level = [(child, 1) for child in children(pid)]
    while level:
        found.extend(level)
        level = [(child, depth + 1) for p, depth in level for child in children(p)]
    return found


def state(pid: int) -> str | None:
    """The process's state letter (Z for a zombie), or None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def alive(pid: int) -> bool:
    """Running, as opposed to gone or a zombie waiting to be reaped."""
    return state(pid) not in (None, "Z")


def group_members(pgid: int) -> list[int]:
    """Live processes in a process group."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def group_cpu(pgid: int) -> int:
    """CPU time used so far by a process group's live members, in clock ticks."""
    return sum(cpu_ticks(pid) for pid in group_members(pgid))


def cpu_ticks(pid: int) -> int:
    """CPU time a process has used so far, in clock ticks; 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])


def command(pid: int) -> str:
    """A process's command line, shortened, or "" once it is gone."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()[:120]


def wait_gone(pids: Sequence[int], seconds: float) -> list[int]:
    """Wait up to `seconds` for these processes to end; those still running."""
    deadline = time.monotonic() + seconds
    left = [p for p in pids if alive(p)]
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = [p for p in left if alive(p)]
    return left


def kill(pid: int, sig: int = signal.SIGKILL) -> bool:
    """Send a signal to one process; False if it was already gone."""
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return False
    return True


_ERROR = re.compile(r"error|exception|fatal|unexpected|traceback", re.IGNORECASE)


@dataclass
class Child:
    """A process the drill started, where its output goes, and when it started."""

    name: str
    process: subprocess.Popen[bytes]
    stem: Path
    started: float = field(default_factory=time.monotonic)
    killed: bool = False  # by the drill, on purpose

    @property
    def pid(self) -> int:
        return self.process.pid

    def output(self) -> tuple[bytes, str]:
        """What it wrote: its standard output, and the last line of its errors."""
        out = self.stem.with_suffix(".out").read_bytes()
        err = self.stem.with_suffix(".err").read_text(errors="replace").strip().splitlines()
        return out, (err[-1][:300] if err else "")

    def last_error(self) -> str:
        """The last line of its output or errors that reports an error, else its exit."""
        found = ""
        for suffix in (".out", ".err"):
            lines = self.stem.with_suffix(suffix).read_text(errors="replace").splitlines()
            for line in lines[-200:]:
                # Skip access logs and structured events: they say what callers were told.
                if not line.startswith("{") and ' "GET ' not in line and ' "POST ' not in line \
                        and _ERROR.search(line):  # fmt: skip
                    found = line.strip()[:300]
        return found or f"exit {self.process.returncode}"


class Closed(RuntimeError):
    """The drill is ending: no process may be started any more."""


class Children:
    """Every process the drill starts, each the leader of its own process group."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self._lock = threading.Lock()
        self._started: list[subprocess.Popen[bytes]] = []
        self._count = 0
        self._closed = False

    def start(self, name: str, argv: Sequence[str],
              env: dict[str, str] | None = None) -> Child:  # fmt: skip
        """Start a command with its output in log files named after it."""
        with self._lock:
            if self._closed:
                raise Closed(f"not starting {name}: the drill is ending")
            self._count += 1
            stem = self.logs / f"{self._count:04d}-{name}"
            out = stem.with_suffix(".out").open("wb")
            err = stem.with_suffix(".err").open("wb")
            with out, err:
                process = subprocess.Popen(  # noqa: S603 - this project's own commands
                    list(argv), stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                    env=env, start_new_session=True,
                )  # fmt: skip
            self._started.append(process)
        return Child(name, process, stem)

    def pids(self) -> set[int]:
        with self._lock:
            return {p.pid for p in self._started}

    def end_all(self, grace: float = 3.0) -> None:
        """End every group the drill started, SIGTERM then SIGKILL after `grace` seconds;
        start no more."""
        with self._lock:
            self._closed = True
            started = list(self._started)
        groups = [p.pid for p in started if group_members(p.pid)]
        for pgid in groups:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(group_members(g) for g in groups):
            time.sleep(0.1)
        for pgid in groups:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGKILL)
        for process in started:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=1)


def kill_group(pgid: int) -> int:
    """SIGKILL what is left of a process group; how many processes that was."""
    members = group_members(pgid)
    if members:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
    return len(members)


def become_subreaper() -> bool:
    """Adopt orphaned descendants (a killed postmaster's backends, a killed append's
    writers), so that the drill reaps them rather than leaving zombies where the
    system's first process reaps nothing."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


PR_SET_CHILD_SUBREAPER = 36
# Children that subprocess.run waits for itself: reaping them would hide their exit code.
_WAITED_BY_OTHERS = frozenset({"runuser", "pg_ctl", "initdb"})


def reap_orphans(tracked: set[int]) -> int:
    """Reap adopted children that have ended, other than those `tracked` by a Popen."""
    me = os.getpid()
    reaped = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in tracked:
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name, rest = stat.split("(", 1)[1].rsplit(")", 1)
        fields = rest.split()
        if fields[0] == "Z" and int(fields[1]) == me and name not in _WAITED_BY_OTHERS:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(int(entry.name), os.WNOHANG)
                reaped += 1
    return reaped
