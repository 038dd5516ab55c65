"""Where the read models live: tables beside the ledger's, in the same database.

`views` is the store itself (connections, the views' table, its reads and writes),
`encoding` how views become rows and COPY text, `sql` one transaction in either
dialect.
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
from projections.store.views import PositionConflict, ScoreInputs, ViewStore

__all__ = [
    "CHUNK", "VIEW_COLUMNS", "CitizenViews", "EncodedViews", "PositionConflict",
    "ScoreInputs", "ViewStore", "encode_views", "same_contributions", "view_rows",
]  # fmt: skip
