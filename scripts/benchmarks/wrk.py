"""The HTTP benchmarks: `ledger serve` and the bare Flask route under wrk, with the CPU
time a request costs each process; one large NDJSON request."""

from __future__ import annotations

import http.client
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import psycopg

from ledger.application import Ledger
from projections import policy
from projections.store import ViewStore
from scripts.benchmarks.common import LEDGER, cpu_seconds, family, register, schema
from scripts.tokens import TokenStore

WRK = shutil.which("wrk")

WRK_SECONDS = 10

WARM_UP = 2

# Score reads of random residents; a resident's list is filled in per run.
READ_LUA = """
local ids = {%(ids)s}
wrk.headers["Authorization"] = "Bearer %(token)s"
math.randomseed(7)
request = function()
  return wrk.format("GET", "/v1/citizens/" .. ids[math.random(#ids)] .. "/score")
end
"""

# Single appends of distinct records (thread, counter), each position acknowledged
# kept to check against the log afterwards.
APPEND_LUA = """
local ids = {%(ids)s}
local threads = {}
local counter = 0
tid = 0
function setup(thread)
  tid = tid + 1
  thread:set("tid", tid)
  table.insert(threads, thread)
end
function init(args)
  acked = {}
  others = 0
end
request = function()
  counter = counter + 1
  local body = string.format('{"type":"payment.recorded","citizen":"%%s",'
    .. '"authority":"tax-bureau","reference":"WRK-%(run)s-%%d-%%d",'
    .. '"occurred_on":"2026-06-30","kind":"tax_paid_on_time","amount":"10.00"}',
    ids[(counter * 7 + tid) %% #ids + 1], tid, counter)
  return wrk.format("POST", "/v1/records", {["Authorization"] = "Bearer %(token)s",
    ["Content-Type"] = "application/json"}, body)
end
response = function(status, headers, body)
  if status == 201 then
    table.insert(acked, string.match(body, '"position":(%%d+)'))
  else
    others = others + 1
  end
end
done = function(summary, latency, requests)
  local found, other = {}, 0
  for _, t in ipairs(threads) do
    for _, p in ipairs(t:get("acked")) do table.insert(found, p) end
    other = other + t:get("others")
  end
  io.write("acked " .. table.concat(found, ",") .. "\\n")
  io.write("others " .. other .. "\\n")
end
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def served(url: str | None, name: str = "ledger-bench") -> Iterator[tuple[int, int]]:
    """`ledger serve --workers 2` on a free loopback port, or with `url` None the server's
    bare Flask route, served the same way: (port, pid). Its connections to PostgreSQL
    carry `name`, so that their backends' time can be told apart."""
    port = _free_port()
    if url is None:
        command = [sys.executable, "-m", "scripts.service.server", "--bare", "--port",
                   str(port), "--workers", "2"]  # fmt: skip
    else:
        command = [LEDGER, "serve", "--port", str(port), "--workers", "2", "--db", url]
    process = subprocess.Popen(
        command, env={**os.environ, "PGAPPNAME": name},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for _ in range(150):
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
                connection.request("GET", "/healthz")
                if connection.getresponse().status == 200:
                    break
            except OSError:
                time.sleep(0.2)
        yield port, process.pid
    finally:
        process.terminate()
        process.wait(timeout=15)


def _backends(postgres: str, name: str) -> list[int]:
    with psycopg.connect(postgres, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s", [name]
        ).fetchall()
    return [int(pid) for (pid,) in rows]


def wrk(
    port: int, connections: int, path: str = "/", script: str | None = None,
    postgres: str | None = None, served_pid: int | None = None, name: str = "ledger-bench",
    seconds: int = WRK_SECONDS,
) -> dict[str, Any]:  # fmt: skip
    """wrk, 2 threads, for `seconds`: requests/s, p50 and p99 in ms, the answers that
    were not 2xx, whatever the script printed, and where the CPU time went per
    request: the served processes, their PostgreSQL backends (when on this machine),
    and wrk itself."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as lua:
        lua.write(script or "")
        lua.flush()
        command = [WRK or "wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency",
                   *(["-s", lua.name] if script else []),
                   f"http://127.0.0.1:{port}{path}"]  # fmt: skip
        processes = family(served_pid) if served_pid else []
        backends = _backends(postgres, name) if postgres else []
        before = {pid: cpu_seconds(pid) for pid in processes + backends}
        own = os.times()
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        after = os.times()
        backends = _backends(postgres, name) if postgres else []
        spent = {pid: cpu_seconds(pid) - before.get(pid, 0.0) for pid in processes + backends}
    out = done.stdout
    figures: dict[str, Any] = {"rps": float(out.split("Requests/sec:")[1].split()[0])}
    for label, key in (("50%", "p50"), ("99%", "p99")):
        figures[key] = _ms(out.split(f" {label}")[1].split()[0])
    figures["not_2xx"] = int(out.split("Non-2xx or 3xx responses:")[1].split()[0]) if (
        "Non-2xx" in out) else 0  # fmt: skip
    figures["printed"] = {line.split(" ", 1)[0]: line.split(" ", 1)[1] for line in
                          out.splitlines() if line.startswith(("acked ", "others "))}  # fmt: skip
    requests = max(figures["rps"] * seconds, 1)
    wrk_cpu = after.children_user + after.children_system - own.children_user - (
        own.children_system)  # fmt: skip
    figures["cpu_us"] = {
        "service": 1e6 * sum(spent.get(pid, 0.0) for pid in processes) / requests,
        "postgres": 1e6 * sum(spent.get(pid, 0.0) for pid in backends) / requests,
        "wrk": 1e6 * wrk_cpu / requests,
    }
    return figures


def _ms(text: str) -> float:
    for unit, scale in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
        if text.endswith(unit):
            return float(text.removesuffix(unit)) * scale
    return float(text)


def http_load(postgres: str, name: str) -> dict[str, Any]:
    """Score reads and concurrent single appends over real HTTP with wrk, each beside the
    bare Flask route served by the same server in the same run; {} without wrk."""
    if WRK is None:
        return {}
    target = f"{postgres}?schema={name}"
    views = ViewStore(target)
    store = TokenStore(views)
    now = datetime.now(UTC)
    reader = store.create("reader", None, None, now)[0]
    service = store.create("service", "tax-bureau", None, now)[0]
    residents = views.residents(policy.DEFAULT_POLICY)
    views.close()
    ids = ",".join(f'"{r}"' for r in residents)
    figures: dict[str, Any] = {}
    # Each server first answers for WARM_UP seconds, unmeasured: its pools and
    # prepared statements are made as they would be long since in service.
    with served(None) as (port, pid):
        wrk(port, 16, "/bare", seconds=WARM_UP)
        figures["bare16"] = wrk(port, 16, "/bare", served_pid=pid)
        figures["bare32"] = wrk(port, 32, "/bare", served_pid=pid)
    with served(target) as (port, pid):
        script = READ_LUA % {"ids": ids, "token": reader}
        wrk(port, 16, script=script, seconds=WARM_UP)
        figures["reads"] = wrk(port, 16, script=script, postgres=postgres, served_pid=pid)
        run = uuid.uuid4().hex[:8]
        script = APPEND_LUA % {"ids": ids, "token": service, "run": run}
        ledger = Ledger(target)
        head = ledger.reader.head()
        ledger.close()
        figures["appends"] = wrk(port, 32, script=script, postgres=postgres, served_pid=pid)
    printed = figures["appends"]["printed"]
    figures["stored"], figures["group"] = _stored_once(target, head, printed, f"WRK-{run}-")
    return figures


def _stored_once(url: str, after: int, printed: dict[str, str], prefix: str) -> tuple[str, float]:
    """Whether every acknowledged append is in the log once, at the position it was
    acknowledged with (the log read from `after` on), and in how many transactions
    (a batch's records share their time of recording), or what is wrong; and the
    records a transaction on average."""
    acked = [int(p) for p in printed.get("acked", "").split(",") if p]
    ledger = Ledger(url)
    held: dict[int, str] = {}
    batches: set[datetime] = set()
    try:
        while True:
            page = ledger.reader.page(after, 10_000)
            for e in page.records:
                if e.record.reference.startswith(prefix):
                    held[e.position] = e.record.reference
                    batches.add(e.recorded_at)
            if page.end == after:
                break
            after = page.end
    finally:
        ledger.close()
    average = len(held) / max(len(batches), 1)
    grouped = f"{len(batches):,} group commits of {average:.1f}"
    if len(set(acked)) != len(acked):
        return "no: a position was acknowledged twice", average
    missing = [p for p in acked if p not in held]
    if missing:
        return f"no: {len(missing)} acknowledged positions hold no such record", average
    twice = len(held) - len(set(held.values()))
    if twice:
        return f"no: {twice} records stored twice", average
    return f"yes ({len(acked):,} acknowledged; {grouped} records on average)", average


def http_ingest(postgres: str, records: list[dict[str, Any]], size: int) -> dict[str, float]:
    """One NDJSON request of `size` single-authority records (copies of the feed's tax
    payments under new references, onto its enrolments) against `ledger append` of
    the same file into a schema in the same state; the seconds of the request spent
    only receiving the body (the same body sent to the bare route)."""
    enrolments = [r for r in records if r["type"] == "citizen.enrolled"]
    payments = [r for r in records if r["authority"] == "tax-bureau"
                and r["type"] == "payment.recorded"]  # fmt: skip
    copies = [{**r, "reference": f"{r['reference']}-{n}"}
              for n in range(size // max(len(payments), 1) + 1) for r in payments]  # fmt: skip
    feed = b"".join(orjson.dumps(r) + b"\n" for r in copies[:size])
    figures: dict[str, float] = {"size": float(len(copies[:size]))}
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "payments.ndjson"
        path.write_bytes(feed)
        people = Path(folder) / "enrolments.ndjson"
        people.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in enrolments))
        with _fresh(postgres, people) as target:
            started = time.perf_counter()
            subprocess.run([LEDGER, "append", str(path), "--json", "--db", target],
                           capture_output=True, check=True)  # fmt: skip
            figures["ledger_append"] = figures["size"] / (time.perf_counter() - started)
        with _fresh(postgres, people) as target:
            views = ViewStore(target)
            token = TokenStore(views).create("service", "tax-bureau", None,
                                             datetime.now(UTC))[0]  # fmt: skip
            views.close()
            headers = {"Authorization": f"Bearer {token}",
                       "Content-Type": "application/x-ndjson"}  # fmt: skip
            with served(target) as (port, _):
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
                started = time.perf_counter()
                connection.request("POST", "/v1/records", body=feed, headers=headers)
                report = orjson.loads(connection.getresponse().read())
                figures["http"] = figures["size"] / (time.perf_counter() - started)
                figures["appended"] = float(report.get("appended", 0))
            with served(None) as (port, _):
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
                started = time.perf_counter()
                connection.request("POST", "/bare", body=feed, headers=headers)
                connection.getresponse().read()
                figures["receive_seconds"] = time.perf_counter() - started
    return figures


@contextmanager
def _fresh(postgres: str, enrolments: Path) -> Iterator[str]:
    """A schema with the demo authorities and the enrolments appended."""
    with schema(postgres) as name:
        target = f"{postgres}?schema={name}"
        register(target)
        subprocess.run([LEDGER, "append", str(enrolments), "--db", target],
                       capture_output=True, check=True)  # fmt: skip
        yield target
