"""How views become rows to write (COPY text on PostgreSQL, tuples on SQLite), and
stored rows contributions again.

A citizen's view under a policy is one row: their identity number and every
contribution of theirs, as a JSON array in a canonical order. One row a citizen, not
one a contribution, is what makes a rebuild's writes and a score read cheap: the
rows are few, and a read is one index lookup."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, NamedTuple

import orjson

from projections.scoring import CitizenFacts, Contribution

# Citizens a chunk: small enough that the writer starts soon after the workers, and
# finishes soon after them (2,000 made a rebuild of the bench's log 5% slower).
CHUNK = 1000

VIEW_COLUMNS = ("policy", "citizen_id", "resident_id", "contributions")


class CitizenViews(NamedTuple):
    """A citizen's facts, and every contribution of theirs under each of several
    policies, in order."""

    citizen: uuid.UUID
    facts: CitizenFacts
    contributions: list[list[Contribution]]


def contributions_text(found: Iterable[Contribution]) -> str:
    """Contributions as stored: a JSON array of arrays (authority, reference, kind,
    rule, points, counts_from, counts_until, cap_group) in their order as tuples, so
    equal views are equal text however they were built.

    No two contributions of a citizen tie before counts_until, which may be None: a
    reference is one record, whose contributions under one rule are the pieces a
    dispute left, each starting on its own day. Sorted by the tuples themselves, not a
    key made for each, they sort in a third less time."""
    return orjson.dumps(sorted(found), default=tuple).decode()


def contributions_of(text: str | bytes) -> list[Contribution]:
    """Stored contributions as `contributions_text` wrote them."""
    day = date.fromisoformat
    return [
        Contribution(authority, reference, kind, rule, points, day(start),
                     day(until) if until else None, group)
        for authority, reference, kind, rule, points, start, until, group in orjson.loads(text)
    ]  # fmt: skip


def view_rows(
    views: Iterable[CitizenViews],
    policies: Sequence[str],
    written: Mapping[uuid.UUID, CitizenViews] | None = None,
) -> list[tuple[str, ...]]:
    """(policy, citizen id, identity number, contributions) rows of these views. With
    `written`, the views as they were last written, a policy's view that is the very
    list written then is left out: a fold hands the old list back when a new record
    changed nothing under that policy (`same_contributions`)."""
    rows: list[tuple[str, ...]] = []
    for cid, facts, per_policy in views:
        before = written.get(cid) if written else None
        for n, (policy, found) in enumerate(zip(policies, per_policy, strict=True)):
            if before is None or before.contributions[n] is not found:
                rows.append((policy, cid.hex, facts.resident_id, contributions_text(found)))
    return rows


def same_contributions(new: Sequence[Contribution], old: Sequence[Contribution]) -> bool:
    """Whether two views hold the same contributions, in whatever order."""
    if len(new) != len(old):
        return False
    return list(new) == list(old) or sorted(new) == sorted(old)


@dataclass(frozen=True, slots=True)
class EncodedViews:
    """A chunk of views ready to write: COPY text on PostgreSQL, rows on SQLite."""

    rows: bytes | list[tuple[str, ...]]
    citizens: int
    # The records folded into these views, for progress reports.
    records: int = 0


def encode_views(
    views: Iterable[CitizenViews], policies: Sequence[str], postgres: bool, chunk: int = CHUNK
) -> Iterator[EncodedViews]:
    """Views in chunks of `chunk` citizens, as `copy_encoded` writes them."""
    quoted = [_text(policy) for policy in policies]
    lines: list[Any] = []
    count = records = 0
    for view in views:
        cid, facts, per_policy = view
        if postgres:
            tail = f"\t{cid.hex}\t{_text(facts.resident_id)}\t"
            for name, found in zip(quoted, per_policy, strict=True):
                lines.append(f"{name}{tail}{_text(contributions_text(found))}\n")
        else:
            lines.extend(view_rows([view], policies))
        count += 1
        records += len(facts.records)
        if count >= chunk:
            yield _chunk(lines, count, records, postgres)
            lines, count, records = [], 0, 0
    if count:
        yield _chunk(lines, count, records, postgres)


def _chunk(lines: list[Any], count: int, records: int, postgres: bool) -> EncodedViews:
    if postgres:
        return EncodedViews("".join(lines).encode(), count, records)
    return EncodedViews(lines, count, records)


# COPY's text format: backslash, tab, newline and carriage return escaped; \N is NULL.
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _text(value: str) -> str:
    # Most values need no escape, and looking costs a twentieth of translating.
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        return value.translate(_COPY_ESCAPES)
    return value
