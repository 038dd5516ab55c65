"""The drill's orchestration: a cluster, a ledger, the service and the projector; waves
of load; faults injected while it runs; then the checks and the figures.

Everything it starts is ended, and the cluster removed, however the drill ends.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ledger.application import Ledger
from projections.store import ViewStore
from scripts.demo import DEMO_AUTHORITIES
from scripts.drill.cluster import Cluster, ClusterError, free_port
from scripts.drill.load import LEDGER, Context, FeedRunner, HttpClient, Prober, request
from scripts.drill.plan import FULL, PROBE_CITIZEN, SHORT, Feed, Scale, Wave, make_wave
from scripts.drill.processes import (
    Child,
    Children,
    Closed,
    become_subreaper,
    command,
    descendants,
    group_members,
    kill,
    kill_group,
    reap_orphans,
)
from scripts.drill.report import account, projector_at
from scripts.drill.verdict import KINDS, judged
from scripts.tokens import TokenStore


class DrillError(RuntimeError):
    """The drill itself could not go on (not a finding about the ledger)."""


@dataclass(frozen=True)
class Options:
    seconds: float  # the fault phase
    faults_each: int
    scale: Scale
    waves: bool  # keep starting waves while the fault phase lasts
    settle: float  # how long the load may take to finish once the faults stop
    run_timeout: float  # a `ledger append` run taking longer is counted as hung and killed
    seed: int = 1
    keep_logs: bool = False

    @classmethod
    def short(cls, seed: int = 1) -> Options:
        return cls(12, 1, SHORT, waves=False, settle=60, run_timeout=120, seed=seed)

    @classmethod
    def full(cls, seconds: float, seed: int = 1) -> Options:
        each = max(1, int(seconds // 40))
        return cls(seconds, each, FULL, waves=True, settle=120, run_timeout=120, seed=seed)


@dataclass
class Events:
    """What happened to the processes, for the report."""

    faults: Counter[str] = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)
    db_down: list[tuple[float, float]] = field(default_factory=list)
    exits: Counter[str] = field(default_factory=Counter)  # ended on their own
    exit_errors: Counter[str] = field(default_factory=Counter)
    left_behind: Counter[str] = field(default_factory=Counter)
    projector_stall: float = 0.0


class Drill:
    """One run of the drill; `run` returns the figures."""

    def __init__(self, options: Options, say: Callable[[str], None]) -> None:
        self.options = options
        self._say = say
        self.started = time.monotonic()
        self.events = Events()
        self.rng = random.Random(options.seed)
        self.cluster: Cluster | None = None
        self.logs = Path(tempfile.mkdtemp(prefix="ledger-drill-logs-"))
        (self.logs / "feeds").mkdir()
        self.children = Children(self.logs)
        self.ctx: Context | None = None
        self.serve: Child | None = None
        self.projector: Child | None = None
        self.supervising = threading.Event()
        self.lock = threading.Lock()
        self.runners: list[FeedRunner] = []
        self.clients: list[HttpClient] = []
        self.waves: list[Wave] = []
        self.failure: Exception | None = None
        self.used: set[str] = {PROBE_CITIZEN}

    def say(self, message: str) -> None:
        self._say(f"[{time.monotonic() - self.started:6.1f}s] {message}")

    # The whole run

    def run(self) -> dict[str, Any]:
        become_subreaper()
        try:
            self._setup()
            self._load_under_faults()
            return self._finish()
        finally:
            previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
            try:
                self._cleanup()
            finally:
                signal.signal(signal.SIGINT, previous)

    def _cleanup(self) -> None:
        if self.ctx is not None:
            self.ctx.stop.set()
        self.supervising.clear()
        with self.lock:  # no restart is under way
            pass
        self.children.end_all()
        if self.cluster is not None:
            self.cluster.destroy()
        reap_orphans(set())
        if self.options.keep_logs:
            self.say(f"the processes' output is kept in {self.logs}")
        else:
            shutil.rmtree(self.logs, ignore_errors=True)

    # Setting up

    def _setup(self) -> None:
        try:
            self.cluster = Cluster()
            self.say(f"creating a PostgreSQL cluster on 127.0.0.1:{self.cluster.port}")
            self.cluster.create()
        except ClusterError as e:
            raise DrillError(str(e)) from None
        url = self.cluster.url
        ledger = Ledger(url)
        views = ViewStore(url)
        try:
            for spec in DEMO_AUTHORITIES:
                ledger.register_authority(spec.authority_id, spec.name, list(spec.may_issue))
            store = TokenStore(views)
            tokens = {
                spec.authority_id: store.create("service", spec.authority_id, None,
                                                ledger.clock.now())[0]
                for spec in DEMO_AUTHORITIES
            }  # fmt: skip
        finally:
            views.close()
            ledger.close()
        port = free_port()
        self.ctx = Context(url, ("127.0.0.1", port), tokens, self.children, self.logs / "feeds",
                           run_timeout=self.options.run_timeout)  # fmt: skip
        self._start_serve()
        self._start_projector()
        deadline = time.monotonic() + 60
        while request(self.ctx.base, "GET", "/healthz", timeout=2).status != 200:
            if time.monotonic() > deadline:
                raise DrillError("ledger serve did not answer /healthz within 60 s")
            if self.serve is not None and self.serve.process.poll() is not None:
                raise DrillError(f"ledger serve exited: {self.serve.output()[1]}")
            time.sleep(0.2)
        self.say(f"ledger serve --workers 2 answers on port {port}; ledger project --follow runs")
        self.supervising.set()
        threading.Thread(target=self._supervise, name="supervisor", daemon=True).start()

    def _env(self) -> dict[str, str]:
        assert self.cluster is not None
        # The URL goes in the environment, as an operator's would, never on a command line.
        return {**os.environ, "LEDGER_DATABASE_URL": self.cluster.url}

    def _start_serve(self) -> None:
        assert self.ctx is not None
        argv = [*LEDGER, "serve", "--workers", "2", "--port", str(self.ctx.base[1])]
        self.serve = self.children.start("serve", argv, self._env())

    def _start_projector(self) -> None:
        argv = [*LEDGER, "project", "--follow", "--interval", "0.5"]
        self.projector = self.children.start("project", argv, self._env())

    def _supervise(self) -> None:
        """Restart the projector when it is killed or ends; restart the service only if
        its process ends (an unanswering service is left alone: that is a finding)."""
        while True:
            time.sleep(0.2)
            with self.lock:
                if not self.supervising.is_set():
                    return
                reap_orphans(self.children.pids())
                try:
                    self._restart_ended()
                except Closed:
                    return

    def _restart_ended(self) -> None:
        for name in ("project", "serve"):
            child = self.projector if name == "project" else self.serve
            if child is None or child.process.poll() is None:
                continue
            if not child.killed:
                self.events.exits[name] += 1
                self.events.exit_errors[f"ledger {name}: {child.last_error()}"[:240]] += 1
                kill_group(child.pid)
                if time.monotonic() - child.started < 1:
                    time.sleep(0.5)  # it cannot start now; do not spin
            if name == "project":
                self._start_projector()
            else:
                self._start_serve()

    # Load and faults

    def _load_under_faults(self) -> None:
        ctx = self.ctx
        assert ctx is not None
        probe = {
            "type": "citizen.enrolled", "citizen": PROBE_CITIZEN,
            "authority": "civil-registry", "reference": "DRILL-PROBE-1",
            "occurred_on": "1988-01-01",
        }  # fmt: skip
        ctx.tally.offer([probe], "http")
        finished = threading.Event()
        Prober(ctx, probe, finished.is_set).start()
        threading.Thread(target=self._watch_projector, args=[finished], daemon=True).start()
        self._start_wave()
        injector = threading.Thread(target=self._inject_all, name="faults", daemon=True)
        injector.start()
        phase_end = time.monotonic() + self.options.seconds
        while time.monotonic() < phase_end or injector.is_alive():
            if self.failure is not None:
                raise self.failure
            if (self.options.waves and self._load_done()
                    and phase_end - time.monotonic() > 20):  # fmt: skip
                self._start_wave()
            time.sleep(0.2)
        injector.join()
        if self.failure is not None:
            raise self.failure
        self.say(f"faults done: {dict(self.events.faults)}; letting the load finish")
        deadline = time.monotonic() + self.options.settle
        while not self._load_done() and time.monotonic() < deadline:
            time.sleep(0.2)
        if not self._load_done():
            self.say(f"the load did not finish within {self.options.settle:.0f}s; stopping it")
        ctx.stop.set()
        finished.set()
        for thread in [*self.runners, *self.clients]:
            thread.join(timeout=5)

    def _watch_projector(self, finished: threading.Event) -> None:
        """The longest time the projections stood still while the log was ahead of them."""
        assert self.cluster is not None
        moved_at, last = time.monotonic(), -1
        while not finished.wait(0.5):
            head, lowest = projector_at(self.cluster.url)
            now = time.monotonic()
            if lowest is None:
                continue
            if lowest != last or lowest >= head:
                moved_at, last = now, lowest
            self.events.projector_stall = max(self.events.projector_stall, now - moved_at)

    def _load_done(self) -> bool:
        with self.lock:
            threads: list[FeedRunner | HttpClient] = [*self.runners, *self.clients]
        return all(not t.is_alive() for t in threads)

    def _start_wave(self) -> None:
        ctx = self.ctx
        assert ctx is not None
        wave = make_wave(len(self.waves), self.options.seed, self.options.scale, self.used)
        self.waves.append(wave)
        runners = [FeedRunner(ctx, feed) for feed in wave.feeds]
        clients = [HttpClient(ctx, n, chains) for n, chains in enumerate(wave.chains)]
        with self.lock:
            self.runners.extend(runners)
            self.clients.extend(clients)
        for thread in [*runners, *clients]:
            thread.start()
        count = sum(1 for _ in wave.records())
        self.say(f"wave {wave.number}: {count} records, {len(wave.feeds)} feeds, "
                 f"{len(clients)} HTTP clients")  # fmt: skip

    def _inject_all(self) -> None:
        try:
            self._inject_scheduled()
        except Closed:
            pass
        except Exception as e:  # noqa: BLE001 - handed to the main thread, which raises it
            self.failure = e

    def _inject_scheduled(self) -> None:
        schedule = [kind for kind in KINDS for _ in range(self.options.faults_each)]
        if self.options.faults_each > 1:
            self.rng.shuffle(schedule)
        gap = self.options.seconds / (len(schedule) + 1)
        start = time.monotonic()
        for number, kind in enumerate(schedule, start=1):
            assert self.ctx is not None
            if self.ctx.stop.wait(max(0.0, start + gap * number - time.monotonic())):
                return
            getattr(self, f"_kill_{kind}")()

    def _kill_append(self) -> None:
        """kill -9 of a bulk `ledger append` (one with writer processes), a random while
        after it started; a big feed is sent again for it if none is running."""
        ctx = self.ctx
        assert ctx is not None
        age = self.rng.uniform(1.0, 4.0)
        target = self._append_to_kill(3.0, age)
        if target is None:
            big = [f for w in self.waves for f in w.feeds if f.big]
            runner = FeedRunner(ctx, self.rng.choice(big))
            with self.lock:
                self.runners.append(runner)
            runner.start()
            # A feed sent again is mostly duplicates and ends sooner: kill it early on.
            age = self.rng.uniform(0.3, 0.8)
            target = self._append_to_kill(age + 15.0, age)
        if target is None:
            self.events.notes.append("no ledger append of a big feed ran long enough to be killed")
            return
        child, feed = target
        child.killed = True
        kill(child.pid)
        self.events.faults["append"] += 1
        ran = time.monotonic() - child.started
        self.say(f"kill -9 ledger append of {feed.name} (pid {child.pid}, after {ran:.1f}s)")
        timer = threading.Timer(5.0, self._left_behind, [child])
        timer.daemon = True
        timer.start()

    def _append_to_kill(self, wait: float, age: float) -> tuple[Child, Feed] | None:
        """A running append of a big feed that has run at least `age` seconds."""
        assert self.ctx is not None
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            now = time.monotonic()
            running = [(c, f) for c, f in self.ctx.running_appends()
                       if f.big and now - c.started > age]  # fmt: skip
            if running:
                return self.rng.choice(running)
            time.sleep(0.1)
        return None

    def _left_behind(self, child: Child) -> None:
        members = group_members(child.pid)
        if members:
            self.events.left_behind["ledger append"] += len(members)
            for what, n in Counter(command(pid) for pid in members).items():
                self.events.notes.append(f"left running 5 s after kill -9 of ledger append "
                                         f"(pid {child.pid}): {n} x {what}")  # fmt: skip
            self.say(f"{len(members)} processes of the killed ledger append (pid {child.pid}) "
                     "still run 5 s later; killing them")  # fmt: skip
            kill_group(child.pid)

    def _kill_worker(self) -> None:
        serve = self.serve
        workers = descendants(serve.pid) if serve is not None else []
        deepest = max((depth for _, depth in workers), default=0)
        candidates = [pid for pid, depth in workers if depth == deepest]
        if not candidates:
            self.events.notes.append("no service worker found to kill")
            return
        pid = self.rng.choice(candidates)
        kill(pid)
        self.events.faults["worker"] += 1
        self.say(f"kill -9 service worker (pid {pid}, of {len(candidates)})")

    def _kill_projector(self) -> None:
        with self.lock:
            child = self.projector
            if child is None or child.process.poll() is not None:
                self.events.notes.append("the projector was not running when it was to be killed")
                return
            child.killed = True
            kill(child.pid)
        self.events.faults["projector"] += 1
        self.say(f"kill -9 ledger project (pid {child.pid}); restarting it")

    def _kill_postgres(self) -> None:
        cluster = self.cluster
        assert cluster is not None
        down = time.monotonic()
        pid = cluster.crash()
        self.events.faults["postgres"] += 1
        self.say(f"kill -9 PostgreSQL postmaster (pid {pid})")
        time.sleep(1.0)
        for attempt in range(5):
            try:
                cluster.start()
                break
            except ClusterError as e:
                if attempt == 4:
                    raise DrillError(f"PostgreSQL did not come back: {e}") from None
                time.sleep(1.0)
        up = time.monotonic()
        self.events.db_down.append((down, up))
        self.say(f"PostgreSQL is back after {up - down:.1f}s (crash recovery included)")

    # The checks

    def _finish(self) -> dict[str, Any]:
        ctx, cluster = self.ctx, self.cluster
        assert ctx is not None
        assert cluster is not None
        caught_up = self._wait_for_projector(20 if not self.options.waves else 60)
        self.supervising.clear()
        with self.lock:  # no restart is under way
            pass
        self._stop("project", self.projector, signal.SIGINT)
        self._stop("serve", self.serve, signal.SIGTERM)
        self.say("ledger verify")
        verify = self.children.start("verify", [*LEDGER, "verify"], self._env())
        rc = verify.process.wait(timeout=300)
        out, error = verify.output()
        verified = {"ok": rc == 0,
                    "detail": (out.decode(errors="replace").strip() or error)[-300:]}  # fmt: skip
        self.say("counting what the log holds, and rebuilding the projections beside it")
        figures = account(cluster.url, ctx.tally, caught_up)
        planned = dict.fromkeys(KINDS, self.options.faults_each)
        down = sum(b - a for a, b in self.events.db_down)
        figures.update(
            verify=verified,
            faults={kind: self.events.faults[kind] for kind in KINDS},
            faults_planned=planned,
            unavailable_seconds=round(ctx.outages.seconds(), 1),
            database_down_seconds=round(down, 1),
            readyz_slowest_seconds=round(ctx.readyz_slowest, 2),
            projector_longest_stall_seconds=round(self.events.projector_stall, 1),
            left_behind=dict(self.events.left_behind),
            unexpected_exits=dict(self.events.exits),
            exit_errors=self.events.exit_errors.most_common(8),
            counts=dict(ctx.tally.counts),
            errors=ctx.tally.errors.most_common(12),
            notes=self.events.notes,
            waves=len(self.waves),
            seconds=round(time.monotonic() - self.started, 1),
        )
        return judged(figures)

    def _wait_for_projector(self, seconds: float) -> bool:
        """Wait for the live projector to reach the end of the log."""
        assert self.cluster is not None
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            head, lowest = projector_at(self.cluster.url)
            if lowest is not None and lowest >= head:
                return True
            time.sleep(0.5)
        self.say(f"the live projector did not reach the end of the log within {seconds:.0f}s")
        return False

    def _stop(self, name: str, child: Child | None, sig: signal.Signals) -> None:
        """Stop a process as an operator would; count what is left of it 5 s later."""
        if child is None or child.process.poll() is not None:
            return
        child.killed = True
        kill(child.pid, sig)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and group_members(child.pid):
            time.sleep(0.1)
        left = kill_group(child.pid)
        if left:
            self.events.left_behind[f"ledger {name}"] += left
            self.say(f"{left} processes of ledger {name} still ran 5 s after {sig.name}")
