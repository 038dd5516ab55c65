"""The benchmark's CPU accounting: what a phase's own processes used, the workers it
left running included, against the whole machine."""

from __future__ import annotations

import subprocess
import sys
import time

from scripts.benchmarks.common import Spent, spending

BURN = "import time\nend = time.process_time() + {seconds}\nwhile time.process_time() < end: pass\n"


def test_a_command_run_and_waited_for_counts_as_the_phase_own() -> None:
    with spending() as spent:
        subprocess.run([sys.executable, "-c", BURN.format(seconds=0.4)], check=True)
    assert spent.own >= 0.35
    assert spent.machine >= 0.3
    assert spent.wall >= 0.35


def test_a_worker_still_running_counts_for_what_it_used_during_the_phase() -> None:
    worker = subprocess.Popen([sys.executable, "-c", BURN.format(seconds=30)])
    try:
        time.sleep(0.3)  # it has used CPU before the phase: none of that counts
        with spending() as spent:
            time.sleep(0.5)
        assert 0.2 <= spent.own <= 0.9
    finally:
        worker.kill()
        worker.wait()


def test_a_worker_reaped_during_the_phase_is_not_counted_for_before_it() -> None:
    worker = subprocess.Popen([sys.executable, "-c", BURN.format(seconds=0.6)])
    time.sleep(0.4)
    with spending() as spent:
        worker.wait()
    assert spent.own < 0.5


def test_per_item_figures_split_the_machine_into_the_phase_and_the_rest() -> None:
    spent = Spent(wall=2.0, machine=3.0, own=2.0)
    assert spent.per(1_000_000) == (3.0, 2.0, 1.0)
    assert spent.cores_busy == 1.5
    assert Spent(wall=1.0, machine=1.0, own=1.5).per(1) == (1e6, 1.5e6, 0.0)
