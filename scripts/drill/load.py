"""The drill's clients: `ledger append` runs over feeds, HTTP clients posting single
records, and a prober; and the tally of what each record was told.

A record is retried until it gets a definitive answer: acknowledged (appended or a
duplicate) or refused. A feed run that is killed, fails or hangs is run again whole,
which is safe since resending a record is answered as a duplicate.
"""

from __future__ import annotations

import contextlib
import http.client
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from scripts.drill.plan import Chain, Feed, Key, Wire, key
from scripts.drill.processes import Child, Children, Closed, group_cpu, kill_group

LEDGER = [sys.executable, "-m", "scripts.cli"]
# A run whose processes use no CPU for this long is waiting for something that will not come.
IDLE = 10.0


class Tally:
    """Per record: what was sent, and whether it was acknowledged or refused, by any path."""

    def __init__(self) -> None:
        self.changed = threading.Condition()
        self.sent: dict[Key, Wire] = {}
        self.paths: dict[Key, set[str]] = {}  # "feed", "http"
        self.acked: set[Key] = set()
        self.refused: dict[Key, str] = {}
        self.blocked: set[Key] = set()
        self.refused_feeds: list[str] = []
        self.counts: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()

    def offer(self, records: Iterable[Wire], path: str) -> None:
        with self.changed:
            for record in records:
                k = key(record)
                self.sent.setdefault(k, record)
                self.paths.setdefault(k, set()).add(path)

    def ack(self, keys: Iterable[Key]) -> None:
        with self.changed:
            self.acked.update(keys)
            self.changed.notify_all()

    def refuse(self, refusals: Iterable[tuple[Key, str]]) -> None:
        with self.changed:
            for k, why in refusals:
                self.refused.setdefault(k, why)
            self.changed.notify_all()

    def block(self, records: Iterable[Wire]) -> None:
        with self.changed:
            self.blocked.update(key(r) for r in records)

    def count(self, what: str, n: int = 1) -> None:
        with self.changed:
            self.counts[what] += n

    def error(self, where: str, message: str) -> None:
        with self.changed:
            self.errors[f"{where}: {message}"[:240]] += 1

    def wait_resolved(self, gate: Iterable[Key], stop: threading.Event) -> bool:
        """Wait until every key of the gate is acknowledged or refused; False on stop."""
        wanted = set(gate)
        with self.changed:
            while not stop.is_set():
                if all(k in self.acked or k in self.refused for k in wanted):
                    return True
                self.changed.wait(0.2)
        return False

    def any_refused(self, gate: Iterable[Key]) -> bool:
        with self.changed:
            return any(k in self.refused and k not in self.acked for k in gate)


@dataclass
class Outages:
    """Intervals during which a client could not get an answer from the service."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    spans: list[tuple[float, float]] = field(default_factory=list)

    def add(self, start: float, end: float) -> None:
        with self.lock:
            self.spans.append((start, end))

    def seconds(self) -> float:
        """The length of the union of the spans."""
        total, reach = 0.0, float("-inf")
        with self.lock:
            spans = sorted(self.spans)
        for start, end in spans:
            if end <= reach:
                continue
            total += end - max(start, reach)
            reach = end
        return total


@dataclass
class Context:
    """What every client shares."""

    url: str
    base: tuple[str, int]
    tokens: dict[str, str]
    children: Children
    feeds_dir: Path
    tally: Tally = field(default_factory=Tally)
    outages: Outages = field(default_factory=Outages)
    stop: threading.Event = field(default_factory=threading.Event)  # stop sending
    run_timeout: float = 60.0
    appends_lock: threading.Lock = field(default_factory=threading.Lock)
    appends: dict[int, tuple[Child, Feed]] = field(default_factory=dict)
    left_behind: list[int] = field(default_factory=list)
    readyz_slowest: float = 0.0

    def running_appends(self) -> list[tuple[Child, Feed]]:
        with self.appends_lock:
            return [(c, f) for c, f in self.appends.values() if c.process.poll() is None]


# Feeds through `ledger append`


class FeedRunner(threading.Thread):
    """Runs `ledger append` over one feed until a run reports; killed or failed runs are
    run again."""

    def __init__(self, ctx: Context, feed: Feed) -> None:
        super().__init__(name=f"feed {feed.name}", daemon=True)
        self.ctx = ctx
        self.feed = feed
        self.done = False

    def run(self) -> None:
        with contextlib.suppress(Closed):
            self._run()

    def _run(self) -> None:
        ctx, feed = self.ctx, self.feed
        records = feed.records
        if feed.gates:
            if not ctx.tally.wait_resolved({k for g in feed.gates.values() for k in g}, ctx.stop):
                return
            closed = {c for c, gate in feed.gates.items() if ctx.tally.any_refused(gate)}
            ctx.tally.block(r for r in records if r["citizen"] in closed)
            records = [r for r in records if r["citizen"] not in closed]
        if not records:
            self.done = True
            return
        path = ctx.feeds_dir / f"{feed.name}.ndjson"
        if not path.exists():
            path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
        ctx.tally.offer(records, "feed")
        attempt = 0
        while not ctx.stop.is_set():
            attempt += 1
            if self._run_once(path, records):
                self.done = True
                return
            time.sleep(min(0.2 * 2**attempt, 2.0) * random.uniform(0.5, 1.0))

    def _run_once(self, path: Path, records: list[Wire]) -> bool:
        ctx, tally = self.ctx, self.ctx.tally
        child = ctx.children.start(
            f"append-{self.feed.name}", [*LEDGER, "append", str(path), "--json", "--db", ctx.url]
        )
        tally.count("append runs")
        with ctx.appends_lock:
            ctx.appends[child.pid] = (child, self.feed)
        try:
            rc = _wait(child, IDLE, ctx.run_timeout, ctx.stop)
        finally:
            with ctx.appends_lock:
                ctx.appends.pop(child.pid, None)
        if rc == "stopped":
            kill_group(child.pid)
            return False
        if rc == "hung":
            tally.count("append runs hung")
            age = time.monotonic() - child.started
            tally.error("ledger append", f"hung (no CPU used for {IDLE:.0f}s, or over "
                        f"{ctx.run_timeout:.0f}s in all); killed after {age:.0f}s")  # fmt: skip
            kill_group(child.pid)
            return False
        assert isinstance(rc, int)
        out, last_error = child.output()
        if child.killed:
            tally.count("append runs killed by the drill")
            return False
        try:
            report = orjson.loads(out) if rc in (0, 1) else None
        except orjson.JSONDecodeError:
            report = None
        if not isinstance(report, dict):
            tally.count("append runs failed")
            tally.error(f"ledger append exit {rc}", last_error or "no report")
            return False
        self._take(report, records, rc)
        return True

    def _take(self, report: dict[str, Any], records: list[Wire], rc: int) -> None:
        tally = self.ctx.tally
        answered = {item["line"] for item in report.get("positions", [])}
        answered |= {item["line"] for item in report.get("duplicate_of", [])}
        tally.ack(key(records[line - 1]) for line in answered)
        refusals = [
            (key(records[item["line"] - 1]),
             f"ledger append {self.feed.name}: {item['field']}: {item['error']}")
            for item in report.get("rejected", [])
        ]  # fmt: skip
        tally.refuse(refusals)
        for _, why in refusals:
            tally.error("refused", why.split(": ", 1)[1])
        if rc == 1 or refusals:
            tally.refused_feeds.append(f"{self.feed.name}: {len(refusals)} lines rejected")
        missing = len(records) - len(answered) - len(refusals)
        if missing:
            tally.error("ledger append", f"{missing} lines neither stored nor rejected")


def _wait(child: Child, idle: float, cap: float, stop: threading.Event) -> int | str:
    """The exit code; or "stopped" once the drill stops, or "hung" when the run's processes
    have used no CPU for `idle` seconds or it has run `cap` seconds."""
    last_cpu, last_change = -1, time.monotonic()
    while True:
        rc = child.process.poll()
        if rc is not None:
            return rc
        if stop.is_set():
            return "stopped"
        now = time.monotonic()
        cpu = group_cpu(child.pid)
        if cpu != last_cpu:
            last_cpu, last_change = cpu, now
        if now - last_change > idle or now - child.started > cap:
            return "hung"
        time.sleep(0.1)


# HTTP clients


@dataclass
class Answer:
    status: int  # 0: no answer (connection refused, reset, timed out)
    body: dict[str, Any]
    seconds: float
    error: str = ""


def request(base: tuple[str, int], method: str, path: str, token: str | None = None,
            body: Any = None, timeout: float = 10.0) -> Answer:  # fmt: skip
    """One request on a new connection."""
    started = time.monotonic()
    connection = http.client.HTTPConnection(*base, timeout=timeout)
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    try:
        connection.request(method, path, orjson.dumps(body) if body is not None else None,
                           headers)  # fmt: skip
        response = connection.getresponse()
        raw = response.read()
    except (OSError, http.client.HTTPException) as e:
        return Answer(0, {}, time.monotonic() - started, type(e).__name__)
    finally:
        connection.close()
    try:
        data = orjson.loads(raw) if raw else {}
    except orjson.JSONDecodeError:
        data = {"detail": raw[:200].decode(errors="replace")}
    return Answer(response.status, data if isinstance(data, dict) else {},
                  time.monotonic() - started)  # fmt: skip


class Channel:
    """One client's view of the service's availability: from its first failed request to
    its next answered one, the service was down for it."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.down_since: float | None = None

    def failed(self, started: float) -> None:
        if self.down_since is None:
            self.down_since = started

    def answered(self) -> None:
        if self.down_since is not None:
            self.ctx.outages.add(self.down_since, time.monotonic())
            self.down_since = None

    def close(self) -> None:
        self.answered()


def post_until_answered(ctx: Context, channel: Channel, record: Wire) -> Answer | None:
    """POST one record until the service gives a definitive answer; None on stop."""
    token = ctx.tokens[record["authority"]]
    delay = 0.05
    while not ctx.stop.is_set():
        started = time.monotonic()
        answer = request(ctx.base, "POST", "/v1/records", token, record)
        ctx.tally.count("http requests")
        if 200 <= answer.status < 300 or 400 <= answer.status < 500:
            channel.answered()
            return answer
        channel.failed(started)
        if answer.status == 0:
            ctx.tally.count("http: no answer")
            ctx.tally.error("http no answer", answer.error)
        else:
            ctx.tally.count(f"http {answer.status}")
            ctx.tally.error(f"http {answer.status}", str(answer.body.get("detail", ""))[:160])
        time.sleep(delay * random.uniform(0.5, 1.0))
        delay = min(delay * 2, 1.0)
    return None


class HttpClient(threading.Thread):
    """Posts its chains' records one at a time, each after the one before it (and the
    chain's gate) has been acknowledged."""

    def __init__(self, ctx: Context, number: int, chains: list[Chain]) -> None:
        super().__init__(name=f"http client {number}", daemon=True)
        self.ctx = ctx
        self.chains = list(chains)
        self.done = False
        for chain in chains:
            ctx.tally.offer(chain.records, "http")

    def run(self) -> None:
        ctx, tally = self.ctx, self.ctx.tally
        channel = Channel(ctx)
        try:
            while self.chains and not ctx.stop.is_set():
                chain = self._next_ready()
                if chain is None:
                    ctx.stop.wait(0.05)
                    continue
                record = chain.records[chain.at]
                answer = post_until_answered(ctx, channel, record)
                if answer is None:
                    return
                rejected = answer.body.get("rejected") or []
                if answer.status < 300 and not rejected:
                    tally.ack([key(record)])
                    chain.at += 1
                else:
                    why = f"HTTP {answer.status}: {answer.body.get('detail', rejected)}"
                    tally.refuse([(key(record), why)])
                    tally.error("refused", why)
                    tally.block(chain.records[chain.at + 1 :])
                    chain.at = len(chain.records)
                if chain.at == len(chain.records):
                    self.chains.remove(chain)
            self.done = not self.chains
        finally:
            channel.close()

    def _next_ready(self) -> Chain | None:
        tally = self.ctx.tally
        for chain in self.chains:
            if chain.at > 0 or not chain.gate:
                return chain
            with tally.changed:
                resolved = all(k in tally.acked or k in tally.refused for k in chain.gate)
            if resolved:
                if tally.any_refused(chain.gate):
                    tally.block(chain.records)
                    self.chains.remove(chain)
                    return None
                return chain
        return None


class Prober(threading.Thread):
    """Asks /readyz and re-posts one record twice a second, throughout: how long the
    service answers nothing useful, and how slow /readyz gets."""

    def __init__(self, ctx: Context, record: Wire, until: Callable[[], bool]) -> None:
        super().__init__(name="prober", daemon=True)
        self.ctx = ctx
        self.record = record
        self.until = until

    def run(self) -> None:
        ctx = self.ctx
        channel = Channel(ctx)
        token = ctx.tokens[self.record["authority"]]
        try:
            while not self.until():
                started = time.monotonic()
                ready = request(ctx.base, "GET", "/readyz", timeout=30)
                ctx.readyz_slowest = max(ctx.readyz_slowest, ready.seconds)
                posted = request(ctx.base, "POST", "/v1/records", token, self.record)
                if 200 <= posted.status < 300:
                    ctx.tally.ack([key(self.record)])
                    channel.answered()
                elif 400 <= posted.status < 500:
                    why = f"HTTP {posted.status}: {posted.body.get('detail', '')}"
                    ctx.tally.refuse([(key(self.record), why)])
                    channel.answered()
                else:
                    channel.failed(started)
                time.sleep(max(0.0, 0.5 - (time.monotonic() - started)))
        finally:
            channel.close()
