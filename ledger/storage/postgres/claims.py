"""A partitioned ledger's claims on references (see ledger.partitioned.claims), on a
connection to a partition's shard: each partition's tables are in its own schema."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import Connection

from ledger.domain.records import RecordKey
from ledger.storage.postgres.statements import beside, composed
from ledger.storage.recorder import Claim, Holder

# A partitioned ledger's claims on references (see ledger.partitioned.claims), on a
# connection to a partition's shard: each partition's tables are in its own schema.
# eventsourcing names the events table after the application class, Ledger.
_EVENTS = "ledger_events"


_INDEX, _CLAIMS = beside(_EVENTS, "record_index"), beside(_EVENTS, "reference_claims")


def claim_references(conn: Connection[Any], schema: str, wanted: Sequence[Claim]) -> None:
    """Claim each (key, citizen, digest) whose key is not claimed yet."""
    conn.execute(*claiming(schema, wanted))


def claiming(schema: str, wanted: Sequence[Claim]) -> tuple[Any, list[Any]]:
    """The statement, and its parameters, that claims each (key, citizen, digest) whose
    key is not claimed yet, and gives the (authority, reference) of each claim it made;
    a key it gives no row for was claimed before, for this record or another."""
    keys = [key for key, _, _ in wanted]
    claim = composed(
        "INSERT INTO {} (authority, reference, citizen_id, digest) "
        "SELECT * FROM unnest(%b::text[], %b::text[], %b::uuid[], %b::bytea[]) "
        "ON CONFLICT DO NOTHING RETURNING authority, reference",
        (schema, _CLAIMS),
    )
    return claim, [
        [k.authority for k in keys], [k.reference for k in keys],
        [c for _, c, _ in wanted], [d for _, _, d in wanted],
    ]  # fmt: skip


def claimed(rows: Sequence[tuple[Any, ...]]) -> set[RecordKey]:
    """The keys `claiming`'s rows say it claimed."""
    return {RecordKey(authority, reference) for authority, reference in rows}


def claim_holders(
    conn: Connection[Any], schema: str, keys: Sequence[RecordKey]
) -> dict[RecordKey, Holder]:
    """The (citizen, digest) each of these keys is claimed for, if it is."""
    return {key: holder for key, (holder, _) in claim_ages(conn, schema, keys).items()}


def claim_ages(
    conn: Connection[Any], schema: str, keys: Sequence[RecordKey]
) -> dict[RecordKey, tuple[Holder, float]]:
    """The (citizen, digest) each of these keys is claimed for, if it is, and the
    seconds since it was (by the database's clock)."""
    rows = conn.execute(
        composed(
            "SELECT c.authority, c.reference, c.citizen_id, c.digest, "
            "EXTRACT(EPOCH FROM now() - c.claimed_at)::float8 FROM {} c "
            "JOIN unnest(%b::text[], %b::text[]) AS k(authority, reference) "
            "ON c.authority = k.authority AND c.reference = k.reference",
            (schema, _CLAIMS),
        ),
        [[k.authority for k in keys], [k.reference for k in keys]],
        prepare=True,
    ).fetchall()
    return {RecordKey(a, r): ((c, bytes(d)), age) for a, r, c, d, age in rows}


def release_claims(conn: Connection[Any], schema: str, claims: Sequence[Claim]) -> None:
    """Drop these claims, each only if still held as given."""
    keys = [key for key, _, _ in claims]
    conn.execute(
        composed(
            "DELETE FROM {} c USING unnest(%b::text[], %b::text[], %b::uuid[], %b::bytea[]) "
            "AS w(authority, reference, citizen_id, digest) WHERE c.authority = w.authority "
            "AND c.reference = w.reference AND c.citizen_id = w.citizen_id "
            "AND c.digest = w.digest",
            (schema, _CLAIMS),
        ),
        [[k.authority for k in keys], [k.reference for k in keys],
         [c for _, c, _ in claims], [d for _, _, d in claims]],
    )  # fmt: skip


def take_claim(
    conn: Connection[Any], schema: str, key: RecordKey, held: Holder, taker: Holder
) -> bool:
    """Move a key's claim from `held` to `taker`, if it is still `held`'s."""
    done = conn.execute(
        composed(
            "UPDATE {} SET citizen_id = %s, digest = %s, claimed_at = now() WHERE authority = %s "
            "AND reference = %s AND citizen_id = %s AND digest = %s",
            (schema, _CLAIMS),
        ),
        [*taker, key.authority, key.reference, *held],
    )
    return done.rowcount == 1


def indexed_with_saves_held(
    conn: Connection[Any], schema: str, keys: Sequence[RecordKey]
) -> set[RecordKey]:
    """Which of these keys a partition's record index holds, once its saves are held
    off (by the table lock each save takes first, so a save in flight ends before):
    held until the caller's transaction on `conn` ends."""
    conn.execute(composed("LOCK TABLE {} IN EXCLUSIVE MODE", (schema, _EVENTS)))
    return {key for key, _, _ in indexed(conn, schema, keys)}


def indexed(conn: Connection[Any], schema: str, keys: Sequence[RecordKey]) -> list[Claim]:
    """The entries a partition's record index holds for these keys, as claims."""
    rows = conn.execute(
        composed(
            "SELECT i.authority, i.reference, i.citizen_id, i.digest FROM {} i JOIN "
            "unnest(%b::text[], %b::text[]) AS k(authority, reference) "
            "ON i.authority = k.authority AND i.reference = k.reference",
            (schema, _INDEX),
        ),
        [[k.authority for k in keys], [k.reference for k in keys]],
    ).fetchall()
    return [(RecordKey(a, r), c, bytes(d)) for a, r, c, d in rows]


def index_page(
    conn: Connection[Any], schema: str, after: RecordKey | None, limit: int
) -> list[Claim]:
    """A partition's record index in key order, after `after`: each key with the citizen
    and digest of its record, as a claim on it would hold them."""
    rows = conn.execute(
        composed(
            "SELECT authority, reference, citizen_id, digest FROM {} "
            "WHERE (authority, reference) > (%s, %s) ORDER BY authority, reference LIMIT %s",
            (schema, _INDEX),
        ),
        [after.authority if after else "", after.reference if after else "", limit],
    ).fetchall()
    return [(RecordKey(a, r), c, bytes(d)) for a, r, c, d in rows]
