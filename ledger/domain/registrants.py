"""Who may write to the ledger and who may read from it: registered authorities, and
what each may issue; relying parties, and the purposes each may ask for. The
registries that hold them are aggregates of `ledger.domain`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from ledger.domain import records as r
from ledger.domain.purposes import purpose
from ledger.domain.records import REFERENCE_PATTERN, Record
from ledger.errors import InvalidRecord, NotEntitled, PurposeRefused

# An authority's or a party's id: what a record's reference may be.
REGISTRANT_ID = REFERENCE_PATTERN


@dataclass(frozen=True, slots=True)
class Authority:
    """A registered issuer and what it may issue, from which date."""

    authority_id: str
    name: str
    may_issue: tuple[str, ...]
    entitled_from: date | None
    registered_at: datetime

    def check_entitled(self, record: Record) -> None:
        """Raise `NotEntitled` unless this authority may issue `record` on its date."""
        may_issue = self.may_issue
        if record.type not in may_issue and (
            not record.kind or f"{record.type}:{record.kind}" not in may_issue
        ):
            raise NotEntitled(f"{self.authority_id} may not issue {_wanted(record)}")
        if self.entitled_from is not None and record.occurred_on < self.entitled_from:
            raise NotEntitled(
                f"{self.authority_id} may issue {_wanted(record)} only from {self.entitled_from}"
            )


@dataclass(frozen=True, slots=True)
class Party:
    """A registered relying party and the purposes it may ask for, from which date."""

    party_id: str
    name: str
    purposes: tuple[str, ...]
    entitled_from: date | None
    registered_at: datetime

    def check_entitled(self, asked: str, on: date) -> None:
        """Raise `PurposeRefused` unless this party may ask for `asked` on `on`."""
        if asked not in self.purposes:
            raise PurposeRefused(
                f"{self.party_id} is not registered for the purpose {asked!r} "
                f"(it is for: {', '.join(self.purposes)})"
            )
        if self.entitled_from is not None and on < self.entitled_from:
            raise PurposeRefused(
                f"{self.party_id} may ask for {asked!r} only from {self.entitled_from}"
            )


def check_authority(authority_id: str, name: str, may_issue: list[str]) -> None:
    """Raise `InvalidRecord`, naming the field, unless an authority so described may be
    registered."""
    _check_registrant(authority_id, "authority", name)
    if not may_issue:
        raise InvalidRecord("must name at least one record type", "may_issue")
    for entitlement in may_issue:
        record_type, colon, kind = entitlement.partition(":")
        if colon and not kind:
            raise InvalidRecord(
                f"{entitlement!r} names no kind after the colon; leave it out to allow all",
                "may_issue",
            )
        if record_type not in r.RECORD_TYPES:
            raise InvalidRecord(
                f"{record_type!r} is not a record type; one of " + ", ".join(r.RECORD_TYPES),
                "may_issue",
            )
        if kind and kind not in r.KINDS.get(record_type, ()):
            kinds = r.KINDS.get(record_type)
            raise InvalidRecord(
                f"{kind!r} is not a kind of {record_type}"
                + ("; one of " + ", ".join(kinds) if kinds else "; it has no kinds"),
                "may_issue",
            )


def check_party(party_id: str, name: str, purposes: list[str]) -> None:
    """Raise `InvalidRecord` (or `UnknownPurpose`), naming the field, unless a relying
    party so described may be registered."""
    _check_registrant(party_id, "party", name)
    if not purposes:
        raise InvalidRecord("must name at least one purpose", "purpose")
    for asked in purposes:
        purpose(asked)


def _check_registrant(registrant_id: str, field: str, name: str) -> None:
    if not REGISTRANT_ID.fullmatch(registrant_id):
        raise InvalidRecord("must be 1 to 64 characters of A-Z a-z 0-9 . _ : / -", field)
    if not 1 <= len(name) <= 200:
        raise InvalidRecord("must be 1 to 200 characters", "name")


def _wanted(record: Record) -> str:
    """What a record needs its authority to be entitled to: its type, and kind if any."""
    return f"{record.type}:{record.kind}" if record.kind else record.type
