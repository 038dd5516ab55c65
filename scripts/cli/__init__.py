"""The `ledger` command: a thin layer over the ledger's application service.

`main` and what its commands share live in `base`; each command family registers
its commands on `main` when imported here.
"""

from scripts.cli import (  # noqa: F401 - they register commands
    citizens,
    parties,
    proofs,
    reading,
    records,
    service,
    shards,
)
from scripts.cli.base import (
    Unusable,
    db_option,
    emit_json,
    main,
    open_ledger,
    open_scores,
    open_views,
    parse_date,
    parse_timestamp,
    reading_options,
)
from scripts.errors import EXIT_REJECTED, EXIT_UNUSABLE

__all__ = [
    "EXIT_REJECTED",
    "EXIT_UNUSABLE",
    "Unusable",
    "db_option",
    "emit_json",
    "main",
    "open_ledger",
    "open_scores",
    "open_views",
    "parse_date",
    "parse_timestamp",
    "reading_options",
]
