"""How views become rows to write (COPY text on PostgreSQL, tuples on SQLite), and
stored rows contributions again."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, NamedTuple

from ledger.domain.records import RecordKey
from projections.scoring import CitizenFacts, Contribution

CHUNK = 2000

CITIZEN_COLUMNS = ("policy", "citizen_id", "resident_id")
CONTRIBUTION_COLUMNS = (
    "policy", "citizen_id", "authority", "reference", "kind", "rule", "points",
    "counts_from", "counts_until", "cap_group",
)  # fmt: skip


class CitizenViews(NamedTuple):
    """A citizen's facts, and their contributions under each of several policies in
    order: all of them, or when `replaced` names records, only those records' (the
    others stored stay as they are)."""

    citizen: uuid.UUID
    facts: CitizenFacts
    contributions: list[list[Contribution]]
    replaced: set[RecordKey] | None = None


def _contribution_rows(
    policy: str, cid: uuid.UUID, items: Sequence[Contribution]
) -> list[tuple[Any, ...]]:
    return [
        (policy, cid.hex, c.authority, c.reference, c.kind, c.rule, c.points,
         c.counts_from.isoformat(), c.counts_until.isoformat() if c.counts_until else None,
         c.cap_group)
        for c in items
    ]  # fmt: skip


def contribution_of(row: Sequence[Any]) -> Contribution:
    """A contribution from its stored columns, policy and citizen aside."""
    authority, reference, kind, rule, points, start, end, group = row
    return Contribution(
        authority, reference, kind, rule, int(points), date.fromisoformat(start),
        date.fromisoformat(end) if end else None, group,
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class EncodedViews:
    """A chunk of views ready to write: COPY text on PostgreSQL, rows on SQLite."""

    citizens_rows: bytes | list[tuple[Any, ...]]
    contributions: bytes | list[tuple[Any, ...]]
    citizens: int
    # The records folded into these views, for progress reports.
    records: int = 0


def encode_views(
    views: Iterable[CitizenViews], policies: Sequence[str], postgres: bool, chunk: int = CHUNK
) -> Iterator[EncodedViews]:
    """Views in chunks of `chunk` citizens, as `copy_encoded` writes them."""
    facts: list[Any] = []
    items: list[Any] = []
    count = records = 0
    text = _ContributionText()
    for cid, citizen, per_policy, _ in views:
        hexid = cid.hex
        if postgres:
            tail = f"\t{hexid}\t{_text(citizen.resident_id)}\n"
            for policy, found in zip(policies, per_policy, strict=True):
                quoted = _text(policy)
                facts.append(quoted + tail)
                items.extend(f"{quoted}\t{hexid}\t{text(c)}\n" for c in found)
        else:
            for policy, found in zip(policies, per_policy, strict=True):
                facts.append((policy, hexid, citizen.resident_id))
                items.extend(_contribution_rows(policy, cid, found))
        count += 1
        records += len(citizen.records)
        if count >= chunk:
            yield _chunk(facts, items, count, records, postgres)
            facts, items, count, records = [], [], 0, 0
            text.clear()
    if count:
        yield _chunk(facts, items, count, records, postgres)


def contribution_data(
    views: Iterable[CitizenViews], policies: Sequence[str], postgres: bool
) -> bytes | list[tuple[Any, ...]]:
    if not postgres:
        return [
            row
            for cid, _, per_policy, _ in views
            for policy, found in zip(policies, per_policy, strict=True)
            for row in _contribution_rows(policy, cid, found)
        ]
    quoted = [_text(policy) for policy in policies]
    text = _ContributionText()
    return "".join(
        f"{name}\t{cid.hex}\t{text(c)}\n"
        for cid, _, per_policy, _ in views
        for name, found in zip(quoted, per_policy, strict=True)
        for c in found
    ).encode()


def _chunk(
    facts: list[Any], items: list[Any], count: int, records: int, postgres: bool
) -> EncodedViews:
    if postgres:
        return EncodedViews("".join(facts).encode(), "".join(items).encode(), count, records)
    return EncodedViews(facts, items, count, records)


# COPY's text format: backslash, tab, newline and carriage return escaped; \N is NULL.
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _text(value: str | None) -> str:
    if value is None:
        return "\\N"
    return value.translate(_COPY_ESCAPES)


class _ContributionText:
    """A contribution in COPY's text format. Authorities, kinds, rules and dates repeat
    across a chunk's rows, so each is escaped or formatted once; `clear` between chunks
    keeps memory flat."""

    def __init__(self) -> None:
        self.strings: dict[str | None, str] = {}
        self.days: dict[date | None, str] = {None: "\\N"}

    def __call__(self, c: Contribution) -> str:
        strings, days = self.strings, self.days
        authority, reference, kind, rule, points, start, until, group = c
        return "\t".join((
            strings.get(authority) or self._string(authority), _text(reference),
            strings.get(kind) or self._string(kind), strings.get(rule) or self._string(rule),
            str(points), days.get(start) or self._day(start),
            days.get(until) or self._day(until), strings.get(group) or self._string(group),
        ))  # fmt: skip

    def _string(self, value: str | None) -> str:
        text = self.strings[value] = _text(value)
        return text

    def _day(self, value: date | None) -> str:
        assert value is not None
        text = self.days[value] = value.isoformat()
        return text

    def clear(self) -> None:
        self.strings.clear()
        self.days.clear()
        self.days[None] = "\\N"
