"""One transaction of the view store, in either dialect: `?` marks, COPY or rows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class Tx:
    """Statements in one transaction, written with `?` marks for both dialects."""

    def __init__(self, cursor: Any, postgres: bool) -> None:
        self.cursor = cursor
        self.postgres = postgres

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.postgres else sql

    def execute(self, sql: str, params: Sequence[Any] = (), binary: bool = False) -> None:
        if binary and self.postgres:
            self.cursor.execute(sql.replace("?", "%b"), params)
            return
        self.cursor.execute(self._sql(sql), params)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self.cursor.executemany(self._sql(sql), rows)

    def copy(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """Insert many rows: COPY on PostgreSQL, executemany on SQLite."""
        if not rows:
            return
        if self.postgres:
            with self.cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            return
        marks = ", ".join("?" * len(columns))
        self.cursor.executemany(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows
        )

    def copy_encoded(
        self, table: str, columns: Sequence[str], data: bytes | Sequence[Sequence[Any]]
    ) -> None:
        """Insert rows made ready to write: COPY text on PostgreSQL, rows on SQLite."""
        if not data:
            return
        if isinstance(data, bytes):
            with self.cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                copy.write(data)
            return
        self.copy(table, columns, data)

    def rows(
        self, sql: str, params: Sequence[Any] = (), binary: bool = False
    ) -> list[tuple[Any, ...]]:
        """The rows of a statement; `binary` sends its parameters in PostgreSQL's binary
        format (arrays are then not quoted and escaped element by element)."""
        self.cursor.execute(
            sql.replace("?", "%b") if binary and self.postgres else self._sql(sql), params
        )
        return [tuple(row) for row in self.cursor.fetchall()]
