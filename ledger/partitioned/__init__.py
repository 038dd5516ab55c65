"""A ledger partitioned over PostgreSQL shards.

The catalog is a ledger of its own, at the one URL every process is given: it holds
the registries of authorities and relying parties and the shard map (see
ledger.domain.shards), all as events in its log. Each partition is a complete ledger in
its own schema on its shard, checking records against the catalog's registries.
"""

from ledger.partitioned.catalog import Catalog, is_partitioned
from ledger.partitioned.ledger import PartitionedLedger

__all__ = ["Catalog", "PartitionedLedger", "is_partitioned"]
