"""What the ledger answers: what became of each line of an append, and a citizen's
records as received."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ledger.domain.records import Record


@dataclass(frozen=True, slots=True)
class Rejection:
    line: int
    field: str
    error: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.field}: {self.error}"


@dataclass(frozen=True, slots=True)
class Duplicate:
    line: int
    position: int


@dataclass
class AppendReport:
    """What happened to each line of an append."""

    appended: int = 0
    positions: list[tuple[int, int]] = field(default_factory=list)
    duplicates: list[Duplicate] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    retries: int = 0
    # On a partitioned ledger, the partition of each line: its positions are that
    # partition's.
    partitions: dict[int, int] = field(default_factory=dict)

    def merge(self, part: AppendReport) -> None:
        """Take in the report of a part of the same append."""
        self.appended += part.appended
        self.positions.extend(part.positions)
        self.duplicates.extend(part.duplicates)
        self.rejected.extend(part.rejected)
        self.retries += part.retries
        self.partitions.update(part.partitions)

    def sort(self) -> None:
        """Every list by line, as the parts of an append come in any order."""
        self.rejected.sort(key=lambda x: x.line)
        self.positions.sort()
        self.duplicates.sort(key=lambda d: d.line)

    def to_json(self) -> dict[str, Any]:
        return {
            "appended": self.appended,
            "duplicates": len(self.duplicates),
            "rejected": [
                {"line": x.line, "field": x.field, "error": x.error} for x in self.rejected
            ],
            "positions": [self._where(ln, p) for ln, p in self.positions],
            "duplicate_of": [self._where(d.line, d.position) for d in self.duplicates],
        }

    def _where(self, line: int, position: int) -> dict[str, int]:
        partition = self.partitions.get(line)
        if partition is None:
            return {"line": line, "position": position}
        return {"line": line, "partition": partition, "position": position}

    def summary(self) -> str:
        return (
            f"appended {self.appended}, duplicates {len(self.duplicates)}, "
            f"rejected {len(self.rejected)}"
        )


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One record as the ledger received it."""

    position: int
    recorded_at: datetime
    version: int
    record: Record

    def to_json(self) -> dict[str, Any]:
        return {
            "position": self.position,
            "recorded_at": self.recorded_at.isoformat(),
            **self.record.to_wire(),
        }
