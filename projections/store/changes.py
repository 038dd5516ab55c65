"""The views' changes (see projections.store.encoding for what a change is): written by
a catch-up, folded into their view every FOLD_EVERY events of its citizen, dropped when
a view is written whole, and read with their view by one subquery."""

from __future__ import annotations

from collections.abc import Sequence

from projections.store.encoding import CHANGE_COLUMNS, ChangeRow, ViewRow, merged_text
from projections.store.sql import Tx

# A citizen's views have their changes folded in whenever the citizen's version (their
# events so far) reaches a multiple of this: a view then never holds more changes than
# this, and is rewritten once for that many of them, not at each. The version, not a
# count of the changes, as the one writing a change knows it without a read.
FOLD_EVERY = 32

_UPSERT = (
    "ON CONFLICT (policy, citizen_id) DO UPDATE SET resident_id = excluded.resident_id, "
    "contributions = excluded.contributions"
)


def of_view(view: str, postgres: bool) -> str:
    """A scalar subquery: the changes of the view row `view` names, their texts joined
    by commas in the order of their positions (NULL for none), as `merged` takes them."""
    where = f"c.policy = {view}.policy AND c.citizen_id = {view}.citizen_id"
    if postgres:
        return (
            "(SELECT string_agg(c.change, ',' ORDER BY c.position) FROM score_changes c "
            f"WHERE {where})"
        )
    return (
        "(SELECT group_concat(change, ',') FROM "
        f"(SELECT c.change FROM score_changes c WHERE {where} ORDER BY c.position))"
    )


def write_views(tx: Tx, rows: Sequence[ViewRow]) -> None:
    """Write these citizens' views whole, in place of what they were with any changes."""
    if not rows:
        return
    if tx.postgres:
        # One statement each, the rows as arrays.
        columns = [list(column) for column in zip(*rows, strict=True)]
        tx.execute(
            "INSERT INTO score_views (policy, citizen_id, resident_id, contributions) "
            f"SELECT * FROM unnest(?::text[], ?::text[], ?::text[], ?::text[]) {_UPSERT}",
            columns,
            binary=True,
        )
        tx.execute(
            "DELETE FROM score_changes c USING unnest(?::text[], ?::text[]) AS k(policy, "
            "citizen_id) WHERE c.policy = k.policy AND c.citizen_id = k.citizen_id",
            columns[:2],
            binary=True,
        )
        return
    tx.executemany(
        "INSERT INTO score_views (policy, citizen_id, resident_id, contributions) "
        f"VALUES (?, ?, ?, ?) {_UPSERT}",
        rows,
    )
    tx.executemany(
        "DELETE FROM score_changes WHERE policy = ? AND citizen_id = ?",
        [row[:2] for row in rows],
    )


def write_changes(tx: Tx, rows: bytes | Sequence[ChangeRow]) -> None:
    """Add these changes (as `page_rows` made them) to their views."""
    tx.copy_encoded("score_changes", CHANGE_COLUMNS, rows)


def fold_in(tx: Tx, views: Sequence[tuple[str, str]]) -> None:
    """Fold into each of these (policy, citizen id) views every change it has."""
    if not views:
        return
    if tx.postgres:
        found = tx.rows(
            "SELECT v.policy, v.citizen_id, v.resident_id, v.contributions, "
            f"{of_view('v', True)} "
            "FROM unnest(?::text[], ?::text[]) AS k(policy, citizen_id) "
            "JOIN score_views v ON v.policy = k.policy AND v.citizen_id = k.citizen_id",
            [[policy for policy, _ in views], [cid for _, cid in views]],
            binary=True,
        )
    else:
        found = []
        for policy, cid in views:
            found += tx.rows(
                "SELECT v.policy, v.citizen_id, v.resident_id, v.contributions, "
                f"{of_view('v', False)} FROM score_views v "
                "WHERE v.policy = ? AND v.citizen_id = ?",
                [policy, cid],
            )
    write_views(
        tx,
        [
            (policy, cid, resident, merged_text(view, later))
            for policy, cid, resident, view, later in found
            if later is not None
        ],
    )
