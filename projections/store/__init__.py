"""Where the read models live: tables beside the ledger's, in the same database.

`views` is the store itself (connections, its reads and writes), `tables` the tables it
keeps (their layout, the rebuild's table, the tracking positions), `changes` the changes
catch-ups write beside the views, `encoding` how views and changes become rows and COPY
text, `sql` one transaction in either dialect.
"""

from projections.store.encoding import (
    CHUNK,
    VIEW_COLUMNS,
    CitizenChange,
    CitizenViews,
    EncodedViews,
    Made,
    PageRows,
    encode_views,
    page_rows,
    same_contributions,
)
from projections.store.tables import PositionConflict
from projections.store.views import ScoreInputs, ViewStore

__all__ = [
    "CHUNK", "VIEW_COLUMNS", "CitizenChange", "CitizenViews", "EncodedViews", "Made",
    "PageRows", "PositionConflict", "ScoreInputs", "ViewStore", "encode_views", "page_rows",
    "same_contributions",
]  # fmt: skip
