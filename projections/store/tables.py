"""The view store's tables: their layout, made or brought up to date as a store opens,
the table a rebuild fills beside the views, and the tracking positions written with
them."""

from __future__ import annotations

from collections.abc import Sequence

from ledger.storage import DDL_LOCK
from projections.store.sql import Tx

SCHEMA = [
    "CREATE TABLE IF NOT EXISTS projection_tracking ("
    " name TEXT PRIMARY KEY, position BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS projection_settings (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    # Each citizen a projection has seen, with every contribution of theirs (see
    # projections.store.encoding); their facts are read from the log.
    "CREATE TABLE IF NOT EXISTS score_views ("
    " policy TEXT NOT NULL, citizen_id TEXT NOT NULL, resident_id TEXT NOT NULL,"
    " contributions TEXT NOT NULL, PRIMARY KEY (policy, citizen_id))",
    # Changes a catch-up made to views, applied in the order of their positions (see
    # projections.store.encoding).
    "CREATE TABLE IF NOT EXISTS score_changes ("
    " policy TEXT NOT NULL, citizen_id TEXT NOT NULL, position BIGINT NOT NULL,"
    " change TEXT NOT NULL, PRIMARY KEY (policy, citizen_id, position))",
]

# Half of each page of views is left free for their next versions: a catch-up's upsert
# then writes the new version on the same page with no new index entry (a HOT update)
# instead of a new page and index entry, some 8 µs of PostgreSQL's CPU a row, not 25.
VIEW_FILLFACTOR = 50

# The table a rebuild on PostgreSQL writes before it takes score_views' place.
NEXT = "score_views_next"

# Layouts of the views before one row a citizen: facts stored beside the views, then a
# row for each contribution.
_OLD_TABLES = ("score_facts", "score_contributions", "score_citizens")


class PositionConflict(RuntimeError):
    """Another runner already moved this projection past the position being written."""


def create(tx: Tx, postgres: bool) -> None:
    """The tables as this version lays them out, whatever an earlier one left."""
    if postgres:
        # Two processes starting at once must not both create the tables.
        tx.execute("SELECT pg_advisory_xact_lock(?)", [DDL_LOCK])
    _retire_old_layouts(tx, postgres)
    for statement in SCHEMA:
        tx.execute(statement)
    if postgres:
        _leave_room(tx, "score_views")


def start_next(tx: Tx, replaced: Sequence[str]) -> None:
    """A table for a rebuild's views, with no index yet, holding the views of every
    policy but the `replaced` ones, which the rebuild writes (PostgreSQL)."""
    tx.execute(f"DROP TABLE IF EXISTS {NEXT}")
    tx.execute(
        f"CREATE TABLE {NEXT} (LIKE score_views INCLUDING ALL EXCLUDING INDEXES) "
        f"WITH (fillfactor = {VIEW_FILLFACTOR})"
    )
    tx.execute(
        f"INSERT INTO {NEXT} SELECT * FROM score_views WHERE NOT (policy = ANY(?))", [replaced]
    )


def drop_changes(tx: Tx, policies: Sequence[str]) -> None:
    """Drop every change of these policies' views (their views are being replaced)."""
    for policy in policies:
        tx.execute("DELETE FROM score_changes WHERE policy = ?", [policy])


def swap_in_next(tx: Tx) -> None:
    """The rebuild's table, indexed, in the views' place as the transaction ends."""
    # A citizen twice in one policy fails here, and nothing changes.
    tx.execute(f"ALTER TABLE {NEXT} ADD CONSTRAINT {NEXT}_pkey PRIMARY KEY (policy, citizen_id)")
    tx.execute("DROP TABLE score_views")
    tx.execute(f"ALTER TABLE {NEXT} RENAME TO score_views")
    tx.execute(f"ALTER TABLE score_views RENAME CONSTRAINT {NEXT}_pkey TO score_views_pkey")


def set_positions(tx: Tx, projections: Sequence[tuple[str, str]], position: int) -> None:
    """Set these projections' positions, whatever they were."""
    for tracking, _ in projections:
        tx.execute("DELETE FROM projection_tracking WHERE name = ?", [tracking])
    tx.executemany(
        "INSERT INTO projection_tracking (name, position) VALUES (?, ?)",
        [(tracking, position) for tracking, _ in projections],
    )


def move(tx: Tx, tracking: str, position: int) -> None:
    """Move a tracking position forwards; PositionConflict if it is already there."""
    moved = tx.rows(
        "UPDATE projection_tracking SET position = ? WHERE name = ? AND position < ? "
        "RETURNING position",
        [position, tracking, position],
    )
    if moved:
        return
    existing = tx.rows("SELECT position FROM projection_tracking WHERE name = ?", [tracking])
    if existing:
        raise PositionConflict(f"{tracking} is already at {existing[0][0]}, not before {position}")
    tx.execute(
        "INSERT INTO projection_tracking (name, position) VALUES (?, ?)", [tracking, position]
    )


def _leave_room(tx: Tx, table: str) -> None:
    """Give a table of views made before VIEW_FILLFACTOR its room (for pages written
    from now on; a rebuild makes them all so)."""
    setting = f"fillfactor={VIEW_FILLFACTOR}"
    options = tx.rows("SELECT reloptions FROM pg_class WHERE oid = to_regclass(?)", [table])
    if options and setting not in (options[0][0] or []):
        tx.execute(f"ALTER TABLE {table} SET ({setting})")


def _retire_old_layouts(tx: Tx, postgres: bool) -> None:
    """Drop the views of an earlier layout with every score projection's position;
    the projector then builds them again from the log."""
    if postgres:
        found = any(tx.rows(f"SELECT to_regclass('{t}') IS NOT NULL")[0][0] for t in _OLD_TABLES)
    else:
        marks = ",".join("?" * len(_OLD_TABLES))
        found = bool(tx.rows(f"SELECT 1 FROM sqlite_master WHERE name IN ({marks})", _OLD_TABLES))
    if not found:
        return
    for table in (*_OLD_TABLES, "score_views"):
        tx.execute(f"DROP TABLE IF EXISTS {table}")
    tx.execute("DELETE FROM projection_tracking WHERE name LIKE ?", ["scores:%"])
