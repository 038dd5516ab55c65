"""The one way readers see the ledger's log: its head, pages of records after a
position, every citizen's records grouped by citizen, one citizen's records, a wait
for new records, and the leaf documents the Merkle tree hashes.

Records are decoded straight from the stored bytes (orjson, then the record type the
topic names in a fixed table), never through eventsourcing's mapper or event objects,
and a topic is never resolved: stored content cannot choose what gets imported.
Events that are not a citizen's record (the authority registry's) are skipped, though
they still move the end of a page. Readers (projections, audit histories, bundles,
`ledger verify`) use only this module; the SQL behind it lives in the recorders, one
implementation per dialect, and nothing here writes.
"""

from ledger.log.decoding import (
    CITIZEN_TOPIC_PREFIX,
    RECORD_TYPE_OF_TOPIC,
    USE_OF_TOPIC,
    logged,
    record_from_payload,
    record_type_of_topic,
    stored_enrolment,
    stored_facts,
    stored_use_time,
)
from ledger.log.entries import (
    CitizenFile,
    FactPage,
    Leaf,
    LeafHashes,
    LoggedFact,
    LoggedRecord,
    LoggedUse,
    Page,
    UnreadableLog,
)
from ledger.log.reader import LogReader, Watch, partition_bounds, partition_of, prefetched

__all__ = [
    "CITIZEN_TOPIC_PREFIX",
    "RECORD_TYPE_OF_TOPIC",
    "USE_OF_TOPIC",
    "CitizenFile",
    "FactPage",
    "Leaf",
    "LeafHashes",
    "LogReader",
    "LoggedFact",
    "LoggedRecord",
    "LoggedUse",
    "Page",
    "UnreadableLog",
    "Watch",
    "logged",
    "partition_bounds",
    "partition_of",
    "prefetched",
    "record_from_payload",
    "record_type_of_topic",
    "stored_enrolment",
    "stored_facts",
    "stored_use_time",
]
