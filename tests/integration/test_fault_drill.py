"""The fault drill's short form as a real run: its own PostgreSQL cluster, real processes
killed -9 (an append, a service worker, the projector, the postmaster), and the figures
it prints as JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from scripts.drill.cluster import missing
from scripts.drill.drill import KINDS

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.postgres
def test_short_drill_loses_doubles_and_wrongly_refuses_nothing() -> None:
    reason = missing()
    if reason is not None:
        message = f"the fault drill cannot make a PostgreSQL cluster: {reason}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    done = subprocess.run(
        [sys.executable, "-m", "scripts.fault_drill", "--short", "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=400, check=False,
    )  # fmt: skip
    assert done.stdout, done.stderr[-3000:]
    figures = json.loads(done.stdout)
    progress = done.stderr[-3000:]
    assert {kind: figures["faults"][kind] >= 1 for kind in KINDS} == dict.fromkeys(KINDS, True)
    assert figures["sent"] > 5000
    assert figures["lost"] == 0, figures["lost_examples"]
    assert figures["doubled"] == 0
    assert figures["index_rows"] == figures["citizen_events"]
    assert figures["wrongly_refused"] == 0, figures["refusals"]
    assert figures["refused_feeds"] == 0, figures["refused_feed_runs"]
    assert figures["unanswered"] == 0, (figures["unanswered_by_path"], figures["errors"])
    assert figures["acknowledged"] == figures["stored"] == figures["sent"]
    assert figures["verify"]["ok"], figures["verify"]["detail"]
    assert figures["rebuild"]["agrees"], figures["rebuild"]["detail"]
    assert done.returncode == 0, progress
