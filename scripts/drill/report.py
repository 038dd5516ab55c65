"""After the drill: what the log holds against what clients were told, whether the live
projections equal a rebuild from position zero, and the figures as text.

It reads the log through the ledger's own decoding and counts every record by its
(authority, reference), so a record stored twice is seen whatever the index says.
"""

from __future__ import annotations

from collections import Counter
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg.sql import SQL, Identifier

from ledger.application import Ledger
from ledger.domain.records import RecordKey
from ledger.domain.wire import parse_record
from ledger.storage import PostgresLedgerRecorder, connect_postgres, environment, log_head_on
from projections import policy
from projections.runner import catch_up, tracking_name
from projections.store import ViewStore
from scripts.drill.load import Tally
from scripts.drill.plan import Key

PAGE = 5000


def projector_at(url: str) -> tuple[int, int | None]:
    """The log's last position and the lowest position of any policy's projection (None
    while some policy has none)."""
    names = [f"scores:{name}" for name in policy.available()]
    try:
        with connect_postgres(url) as conn:
            last = log_head_on(conn)
            rows = conn.execute(
                "SELECT name, position FROM projection_tracking WHERE name = ANY(%s)", [names]
            ).fetchall()
    except psycopg.Error:
        return 0, None
    if len(rows) < len(names):
        return last, None
    return last, min(int(position) for _, position in rows)


def account(url: str, tally: Tally, caught_up: bool) -> dict[str, Any]:
    """The figures about records, the log's integrity and the projections."""
    ledger = Ledger(url)
    try:
        stored_times = _stored_times(ledger)
        index = {
            (k.authority, k.reference): entry
            for k, entry in ledger.store.lookup(RecordKey(*k) for k in tally.sent).items()
        }
        stored = {
            k for k, wire in tally.sent.items()
            if stored_times[k] >= 1 and k in index
            and index[k].digest == parse_record(wire).digest
        }  # fmt: skip
        recorder = ledger.recorder
        assert isinstance(recorder, PostgresLedgerRecorder)
        with connect_postgres(url) as conn:
            query = SQL("SELECT COUNT(*) FROM {}").format(Identifier(recorder.index_table))
            index_rows = int(conn.execute(query).fetchone()[0])  # type: ignore[index]
        rebuild = _rebuild_agrees(ledger, url, caught_up)
    finally:
        ledger.close()
    acked = set(tally.acked)
    refused = {k for k in tally.refused if k in tally.sent}
    answered = acked | refused
    lost = acked - stored
    unanswered = set(tally.sent) - answered - tally.blocked
    return {
        "sent": len(tally.sent),
        "acknowledged": len(acked),
        "stored": len(stored),
        "lost": len(lost),
        "lost_examples": [f"{a}/{r}" for a, r in sorted(lost)[:5]],
        "doubled": sum(1 for n in stored_times.values() if n > 1),
        "wrongly_refused": len(refused),
        "refusals": [f"{a}/{r}: {tally.refused[(a, r)]}" for a, r in sorted(refused)[:8]],
        "refused_feeds": len(tally.refused_feeds),
        "refused_feed_runs": tally.refused_feeds[:8],
        "unanswered": len(unanswered),
        "unanswered_by_path": dict(Counter(p for k in unanswered for p in tally.paths[k])),
        "blocked": len(tally.blocked - answered),
        "stored_never_sent": len(set(stored_times) - set(tally.sent)),
        "citizen_events": sum(stored_times.values()),
        "index_rows": index_rows,
        "rebuild": rebuild,
    }


def _stored_times(ledger: Ledger) -> Counter[Key]:
    """How many events of the log hold each (authority, reference)."""
    times: Counter[Key] = Counter()
    after = 0
    while True:
        page = ledger.reader.page(after, PAGE)
        for logged in page.records:
            times[(logged.record.authority, logged.record.reference)] += 1
        if page.end == after:
            return times
        after = page.end


def _rebuild_agrees(ledger: Ledger, url: str, caught_up: bool) -> dict[str, Any]:
    """Build every policy's views from position zero into a schema of their own and
    compare them, contribution for contribution, with the live projector's."""
    head = ledger.max_position()
    live_schema = environment(url)["POSTGRES_SCHEMA"]
    schema = f"{live_schema}_rebuilt"[:63]
    server = urlunsplit(urlsplit(url)._replace(query=""))
    with connect_postgres(url) as conn:
        conn.execute(SQL("CREATE SCHEMA {}").format(Identifier(schema)))
        try:
            return _compare(ledger, conn, url, f"{server}?schema={schema}", caught_up, head)
        finally:
            conn.execute(SQL("DROP SCHEMA {} CASCADE").format(Identifier(schema)))


def _compare(
    ledger: Ledger, conn: psycopg.Connection[Any], url: str, rebuilt_url: str, caught_up: bool,
    head: int,
) -> dict[str, Any]:  # fmt: skip
    chosen = [policy.load(name) for name in policy.available()]
    rebuilt = ViewStore(rebuilt_url)
    live = ViewStore(url)
    try:
        positions = catch_up(ledger, rebuilt, chosen)
        problems = []
        if not caught_up:
            problems.append("the live projector never reached the end of the log")
        rows = conn.execute("SELECT name, position FROM projection_tracking").fetchall()
        at_live: dict[str, int] = {str(name): int(at) for name, at in rows}
        compared = 0
        for item in chosen:
            at = at_live.get(tracking_name(item), 0)
            if at != head or positions[item.name] != head:
                problems.append(f"{item.name}: live at {at}, rebuilt at "
                                f"{positions[item.name]}, log at {head}")  # fmt: skip
            # The views as they are read: the live ones with the changes a catch-up made.
            mine, theirs = (
                Counter(live.contributions(item.name)),
                Counter(rebuilt.contributions(item.name)),
            )
            compared += len(live.residents(item.name))
            differ = sum(((mine - theirs) + (theirs - mine)).values())
            if differ or sorted(live.residents(item.name)) != sorted(rebuilt.residents(item.name)):
                problems.append(f"{item.name}: {differ} contributions differ between live "
                                "and rebuilt")  # fmt: skip
    finally:
        rebuilt.close()
        live.close()
    return {
        "agrees": not problems,
        "detail": "; ".join(problems) or f"{compared} views equal, every policy at {head}",
    }


def text(figures: dict[str, Any]) -> str:
    """The figures as a person reads them."""
    faults = ", ".join(f"{k} {n}" for k, n in figures["faults"].items())
    lines = [
        "",
        f"fault drill: {figures['seconds']}s, {figures['waves']} wave(s)",
        f"  records sent            {figures['sent']:>8}",
        f"  acknowledged            {figures['acknowledged']:>8}",
        f"  stored                  {figures['stored']:>8}",
        f"  lost                    {figures['lost']:>8}   (acknowledged, not stored)",
        f"  doubled                 {figures['doubled']:>8}   (stored more than once)",
        f"  wrongly refused         {figures['wrongly_refused']:>8}   "
        f"(valid records refused; {figures['refused_feeds']} feed runs exited 1)",
        f"  unanswered              {figures['unanswered']:>8}   (no answer by the end; "
        f"by path {figures['unanswered_by_path']})",
        f"  not sent                {figures['blocked']:>8}   (an earlier record was refused)",
        f"  faults injected         {faults}",
        f"  unavailable             {figures['unavailable_seconds']:>7}s   "
        f"(database down {figures['database_down_seconds']}s; slowest /readyz "
        f"{figures['readyz_slowest_seconds']}s)",
        f"  projector stood still   {figures['projector_longest_stall_seconds']:>7}s   "
        "(longest, while the log was ahead of it)",
        f"  ledger verify           {'ok' if figures['verify']['ok'] else 'FAILED'}: "
        f"{figures['verify']['detail']}",
        f"  rebuild = live views    {'yes' if figures['rebuild']['agrees'] else 'NO'}: "
        f"{figures['rebuild']['detail']}",
        f"  index rows / events     {figures['index_rows']} / {figures['citizen_events']}",
    ]
    if figures["left_behind"]:
        lines.append(f"  processes left behind   {figures['left_behind']}")
    if figures["unexpected_exits"]:
        lines.append(f"  exited on their own     {figures['unexpected_exits']}")
    counts = ", ".join(f"{k} {n}" for k, n in sorted(figures["counts"].items()))
    lines.append(f"  counts                  {counts}")
    for title, items in (("what went wrong", figures["errors"]),
                         ("why processes ended", figures["exit_errors"])):  # fmt: skip
        if items:
            lines.append(f"  {title}:")
            lines.extend(f"    {n:>6} x {message}" for message, n in items)
    for title, examples in (("failed", figures["failures"]),
                            ("findings", figures["findings"]),
                            ("refused, for example", figures["refusals"]),
                            ("lost, for example", figures["lost_examples"]),
                            ("feed runs with rejections", figures["refused_feed_runs"]),
                            ("notes", figures["notes"])):  # fmt: skip
        if examples:
            lines.append(f"  {title}:")
            lines.extend(f"    {example}" for example in examples)
    lines.append(f"RESULT: {'PASS' if figures['ok'] else 'FAIL'}")
    return "\n".join(lines)
