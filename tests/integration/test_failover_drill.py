"""The failover drill, run for real: a shard of two nodes under pg_auto_failover loses
its primary to kill -9 under a load of appends, and the same ledger goes on through
the promoted standby with nothing acknowledged lost or doubled."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scripts.drill.failover import missing

ROOT = Path(__file__).resolve().parents[2]


def _drill_can_run() -> None:
    """Skip when pg_auto_failover is missing here; fail when it must be there."""
    reason = missing()
    if reason is not None:
        # .ci/run installs pg_auto_failover where it can, and then says it must run.
        if os.environ.get("LEDGER_FAILOVER_REQUIRED") == "1":
            pytest.fail(f"the failover drill cannot run: {reason}")
        pytest.skip(f"the failover drill cannot run: {reason}")


@pytest.mark.failover
def test_appends_go_on_through_the_promoted_standby() -> None:
    _drill_can_run()
    done = subprocess.run(
        [sys.executable, "-m", "scripts.failover_drill", "--citizens", "120", "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.stdout, done.stderr[-3000:]
    figures = json.loads(done.stdout)
    assert figures["acknowledged"] > 1000
    assert figures["lost"] == 0
    assert figures["doubled"] == 0
    assert figures["stored"] == figures["acknowledged"]
    assert figures["standby_promoted_after"] is not None, done.stderr[-3000:]
    assert figures["states"]["n2"] in ("wait_primary", "primary")
    assert figures["verified"], done.stderr[-3000:]
    assert done.returncode == 0


@pytest.mark.failover
def test_the_drills_servers_stop_when_the_drill_is_killed() -> None:
    """kill -9 of the drill mid-run leaves no keeper or server of its shard running."""
    _drill_can_run()
    drill = subprocess.Popen(
        [sys.executable, "-m", "scripts.failover_drill", "--citizens", "120", "--json"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert drill.stderr is not None
    try:
        folder = ""
        for line in drill.stderr:
            if "the servers' data: " in line:
                folder = line.split("the servers' data: ", 1)[1].strip()
            if "appending" in line:
                break
        assert folder, "the drill never said where its servers' data is"
        assert _running(folder), "no server of the drill's shard was running"
    finally:
        drill.kill()
        drill.wait()
    deadline = time.monotonic() + 60
    while _running(folder) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _running(folder) == []


def _running(folder: str) -> list[str]:
    """The command lines of live processes working in the drill's folder (keepers run
    there, servers in their data directories under it; both retitle themselves, so
    their command lines do not say)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            where = os.readlink(entry / "cwd")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, IndexError):
            continue
        if (where == folder or where.startswith(folder + "/")) and state != "Z":
            found.append(command)
    return found
