"""How views and their changes become rows to write (COPY text on PostgreSQL, tuples
on SQLite), and stored rows contributions again.

A citizen's view under a policy is one row: their identity number and every
contribution of theirs, as a JSON array in a canonical order. One row a citizen, not
one a contribution, is what makes a rebuild's writes and a score read cheap: the
rows are few, and a read is one index lookup.

A catch-up does not rewrite the view of a citizen it has seen before: it adds a row of
their changes, the records it scored again (`replaces`, none for records that act on
no other) and what those records contribute now. A reader applies a view's changes in
the order of their positions (`merged`); once a view has gathered enough of them, the
catch-up folds them into the view (projections.store.changes). Rewriting a view costs
its whole text and PostgreSQL an update in place; a change costs only its own records
and an insert, a third of the update."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, NamedTuple

import orjson

from ledger.domain.records import RecordKey
from projections.scoring import CitizenFacts, Contribution, Scored

# Citizens a chunk: small enough that the writer starts soon after the workers, and
# finishes soon after them (2,000 made a rebuild of the bench's log 5% slower).
CHUNK = 1000

VIEW_COLUMNS = ("policy", "citizen_id", "resident_id", "contributions")
CHANGE_COLUMNS = ("policy", "citizen_id", "position", "change")


class CitizenViews(NamedTuple):
    """A citizen's facts, and every contribution of theirs under each of several
    policies, in order."""

    citizen: uuid.UUID
    facts: CitizenFacts
    contributions: list[list[Scored]]


def contributions_text(found: Iterable[Scored]) -> str:
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
    return _contributions(orjson.loads(text))


def _contributions(items: list[list[Any]]) -> list[Contribution]:
    day = date.fromisoformat
    return [
        Contribution(authority, reference, kind, rule, points, day(start),
                     day(until) if until else None, group)
        for authority, reference, kind, rule, points, start, until, group in items
    ]  # fmt: skip


def change_text(replaces: Iterable[RecordKey] | None, found: Iterable[Scored]) -> str:
    """A change to a view as stored: a JSON array of the keys of the records scored again
    (null when the records act on none, so that nothing is taken away) and their
    contributions now, as `contributions_text` writes them."""
    keys = sorted(replaces) if replaces is not None else None
    return orjson.dumps([keys, sorted(found)], default=tuple).decode()


def merged(view: str | bytes, changes: str | bytes | None) -> list[Contribution]:
    """A view's stored contributions with its changes applied in order: `changes` is
    the change texts joined by commas, in the order of their positions (None for none);
    the result is in the view's own order, as a view rewritten whole would hold it."""
    return _contributions(_merged(view, changes))


def merged_text(view: str | bytes, changes: str | bytes | None) -> str:
    """As `merged`, as `contributions_text` would write it."""
    return orjson.dumps(_merged(view, changes)).decode()


def _merged(view: str | bytes, changes: str | bytes | None) -> list[list[Any]]:
    # On the stored arrays, not contributions: their dates as written (ISO dates sort
    # as the dates do) and None after them, which no two contributions reach.
    found: list[list[Any]] = orjson.loads(view)
    if not changes:
        return found
    if isinstance(changes, bytes):
        changes = changes.decode()
    for replaces, added in orjson.loads(f"[{changes}]"):
        if replaces:
            gone = {(authority, reference) for authority, reference in replaces}
            found = [c for c in found if (c[0], c[1]) not in gone]
        found += added
    found.sort()
    return found


class CitizenChange(NamedTuple):
    """What a catch-up changed of the views of a citizen it has seen before: the records
    it scored again (None when the new records act on none, so nothing is taken away),
    and under each policy in order their contributions now, or None where that view is
    unchanged; whether the views are then to have their changes folded in; and the
    citizen's facts as the catch-up folded them (to be kept), if it did."""

    citizen: uuid.UUID
    replaces: frozenset[RecordKey] | None
    contributions: list[list[Scored] | None]
    fold: bool
    facts: CitizenFacts | None


Made = CitizenViews | CitizenChange

ViewRow = tuple[str, str, str, str]
ChangeRow = tuple[str, str, int, str]


class PageRows(NamedTuple):
    """The rows a catch-up makes of a page, or of part of it: (policy, citizen id,
    identity number, contributions) of whole views; the changes, at the page's end,
    as COPY text on PostgreSQL and (policy, citizen id, position, change) rows on
    SQLite; and (policy, citizen id) of the views to have their changes folded in then;
    and how many citizens they came from."""

    views: list[ViewRow]
    changes: bytes | list[ChangeRow]
    folds: list[tuple[str, str]]
    citizens: int


def view_rows(views: Iterable[CitizenViews], policies: Sequence[str]) -> list[ViewRow]:
    """(policy, citizen id, identity number, contributions) rows of these views."""
    return [
        (policy, cid.hex, facts.resident_id, contributions_text(found))
        for cid, facts, per_policy in views
        for policy, found in zip(policies, per_policy, strict=True)
    ]


def page_rows(
    made: Iterable[Made], policies: Sequence[str], position: int, postgres: bool
) -> PageRows:
    """The rows of what a catch-up made of its citizens on a page ending at `position`:
    whole views (of citizens enrolled on the page) and changes."""
    views: list[ViewRow] = []
    changes: list[Any] = []
    folds: list[tuple[str, str]] = []
    citizens = 0
    names = [_text(policy) for policy in policies] if postgres else policies
    for item in made:
        citizens += 1
        if type(item) is CitizenViews:
            views += view_rows([item], policies)
            continue
        assert type(item) is CitizenChange
        cid = item.citizen.hex
        for name, found in zip(names, item.contributions, strict=True):
            if found is None:
                continue
            text = change_text(item.replaces, found)
            if postgres:
                changes.append(f"{name}\t{cid}\t{position}\t{_json_text(text)}\n")
            else:
                changes.append((name, cid, position, text))
        if item.fold:
            folds += [(policy, cid) for policy in policies]
    return PageRows(views, "".join(changes).encode() if postgres else changes, folds, citizens)


def same_contributions(new: Sequence[Scored], old: Sequence[Scored]) -> bool:
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
                lines.append(f"{name}{tail}{_json_text(contributions_text(found))}\n")
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


def _json_text(value: str) -> str:
    # JSON as orjson writes it holds no tab, newline or carriage return (they are
    # escaped, with a backslash): only backslashes need escaping again.
    return value.replace("\\", "\\\\") if "\\" in value else value


def _text(value: str) -> str:
    # Most values need no escape, and looking costs a twentieth of translating.
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        return value.translate(_COPY_ESCAPES)
    return value
