"""Where the read models live: tables beside the ledger's, in the same database.

`views` is the store itself (connections, its reads and writes), `tables` the tables it
keeps (their layout, the rebuild's table, the tracking positions), `encoding` how views
become rows and COPY text, `sql` one transaction in either dialect.
"""

from projections.store.encoding import (
    CHUNK,
    VIEW_COLUMNS,
    CitizenViews,
    EncodedViews,
    encode_views,
    same_contributions,
    view_rows,
)
from projections.store.tables import PositionConflict
from projections.store.views import ScoreInputs, ViewStore

__all__ = [
    "CHUNK", "VIEW_COLUMNS", "CitizenViews", "EncodedViews", "PositionConflict",
    "ScoreInputs", "ViewStore", "encode_views", "same_contributions", "view_rows",
]  # fmt: skip
