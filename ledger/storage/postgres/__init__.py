"""The PostgreSQL adapter: eventsourcing's recorder with the record index, the Merkle
tree, the checkpoints and the writers' gate in the transactions of its inserts
(recorder), what it reads (reads), the statements both share (statements), and a
partitioned ledger's reference claims on a shard (claims)."""

from ledger.storage.postgres.claims import (
    claim_ages,
    claim_holders,
    claim_references,
    claimed,
    claiming,
    index_page,
    indexed,
    indexed_with_saves_held,
    release_claims,
    take_claim,
)
from ledger.storage.postgres.recorder import PostgresLedgerRecorder
from ledger.storage.postgres.statements import DDL_LOCK

__all__ = [
    "DDL_LOCK",
    "PostgresLedgerRecorder",
    "claim_ages",
    "claim_holders",
    "claim_references",
    "claimed",
    "claiming",
    "index_page",
    "indexed",
    "indexed_with_saves_held",
    "release_claims",
    "take_claim",
]
