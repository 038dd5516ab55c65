"""The aggregates: each Citizen's history of records, and the registry of authorities.

Events are facts as the authorities reported them (ids, dates, Decimal amounts);
nothing here derives points. Commands check every rule before triggering an event,
so a refused command leaves the aggregate untouched.

The domain's parts are its submodules (identity, records, the wire format, the fold
of facts, the registrants); the aggregates live in the package itself because every
stored event names its class by module, `ledger.domain`, and the log must keep reading
them.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from eventsourcing.domain import Aggregate

from ledger.domain import records as r
from ledger.domain.facts import CitizenFacts, FactParts, RecordFacts
from ledger.domain.identity import NAMESPACE, ResidentId, citizen_id, parse_resident_id
from ledger.domain.records import Record, RecordKey
from ledger.domain.registrants import Authority, Party, check_authority, check_party
from ledger.errors import (
    AuthorityExists,
    PartyExists,
    RuleViolation,
    TargetError,
)

REGISTRY_ID = uuid.uuid5(NAMESPACE, "authority-registry")
PARTY_REGISTRY_ID = uuid.uuid5(NAMESPACE, "party-registry")


class Citizen(Aggregate):
    """One person's history: every record about them, in the order received."""

    class Event(Aggregate.Event):
        authority: str
        reference: str
        occurred_on: date

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, Citizen)
            if isinstance(self, Citizen.Enrolled):  # __init__ holds the enrolment
                return
            aggregate.facts.add(
                _TYPES[type(self)],
                RecordKey(self.authority, self.reference),
                getattr(self, "kind", None),
                self.occurred_on,
                getattr(self, "target", None),
                getattr(self, "outcome", None),
            )

    class Enrolled(Aggregate.Created):
        resident_id: str
        authority: str
        reference: str
        occurred_on: date

    class InfractionRecorded(Event):
        kind: str
        amount: Decimal | None

    class InfractionSettled(Event):
        target: RecordKey
        amount: Decimal

    class PaymentRecorded(Event):
        kind: str
        amount: Decimal

    class VerificationRecorded(Event):
        kind: str
        credential: str

    class VerificationRevoked(Event):
        target: RecordKey
        reason: str

    class RecordDisputed(Event):
        target: RecordKey
        reason: str

    class DisputeResolved(Event):
        target: RecordKey
        outcome: str

    class RecordVacated(Event):
        target: RecordKey
        reason: str

    class CreditRepaired(Event):
        target: RecordKey

    def __init__(self, resident_id: str, authority: str, reference: str, occurred_on: date) -> None:
        self.resident_id = resident_id
        self.facts = CitizenFacts(resident_id)
        self.facts.add(r.ENROLLED, RecordKey(authority, reference), None, occurred_on)

    @property
    def records(self) -> dict[RecordKey, RecordFacts]:
        """Each of the citizen's records by key, with what later records did to it."""
        return self.facts.records

    @property
    def birth_date(self) -> date:
        return ResidentId(self.resident_id).birth_date

    @classmethod
    def enroll(cls, record: Record, at: datetime) -> Citizen:
        """Open a citizen's history with their enrolment record."""
        _check_not_before_birth(record)
        return cls._create(
            cls.Enrolled,
            id=citizen_id(record.citizen.value),
            timestamp=at,
            resident_id=record.citizen.value,
            authority=record.authority,
            reference=record.reference,
            occurred_on=record.occurred_on,
        )

    @classmethod
    def enrolled(cls, record: Record, at: datetime) -> Citizen:
        """`enroll` for a writer that stores the event itself from the record (see
        `ledger.storage.encoding`): the same check and the same citizen, as its event
        would build it, with no event object."""
        _check_not_before_birth(record)
        return cls.reopened(record, at)

    @classmethod
    def reopened(cls, enrolment: Record, at: datetime) -> Citizen:
        """The citizen as their stored enrolment, recorded at `at`, made them: what
        replaying its event gives, with no event object and no rule checked again (the
        rules held when it was recorded)."""
        citizen = cls.__new__(cls)
        citizen.__base_init__(citizen_id(enrolment.citizen.value), cls.INITIAL_VERSION, at)
        citizen.__init__(  # type: ignore[misc]
            enrolment.citizen.value, enrolment.authority, enrolment.reference,
            enrolment.occurred_on,
        )  # fmt: skip
        return citizen

    def append(self, record: Record, at: datetime) -> None:
        """Add a record of any type but enrolment, after checking its rules."""
        self.check(record)
        event_class, names = _EVENT_CLASSES[record.type]
        payload = {name: getattr(record, name) for name in names}
        self.trigger_event(
            event_class,
            timestamp=at,
            authority=record.authority,
            reference=record.reference,
            occurred_on=record.occurred_on,
            **payload,
        )

    def add(self, record: Record, at: datetime) -> None:
        """`append` for a writer that stores the event itself from the record: the
        same checks and the same state as the event would leave, with no event object."""
        self.check(record)
        self.replay_use(self.version + 1, at)
        self.facts.apply(record)

    def replay_facts(self, record_type: str, parts: FactParts, version: int, at: datetime) -> None:
        """Fold in a stored record, the `version`th event, recorded at `at`, given as what
        the citizen's facts take of it (its type, key, kind, date, target and outcome):
        the state replaying its event leaves, with no event object and no rule checked
        again."""
        self.replay_use(version, at)
        self.facts.add(record_type, *parts)

    def replay_use(self, version: int, at: datetime) -> None:
        """Fold in a stored use of the file (see `FileUsed`): it moves the version on and
        nothing else."""
        if version != self.version + 1:
            raise ValueError(f"citizen {self.id}: event {version} follows event {self.version}")
        self.version = version
        self.modified_on = at

    def check(self, record: Record) -> None:
        """Raise the rule a record of any type but enrolment breaks, if any."""
        if record.citizen.value != self.resident_id:
            raise RuleViolation(f"is not {self.resident_id}, whose history this is", "citizen")
        if record.type == r.ENROLLED:
            raise RuleViolation("is already enrolled", "citizen")
        _check_not_before_birth(record)
        if record.key in self.records:  # pragma: no cover - the service checks the index
            raise RuleViolation("is already used by another record", "reference")
        target = self.records.get(record.target) if record.target else None
        if record.target is not None:
            if target is None:
                raise TargetError(f"{record.target} is not a record of this citizen")
            if record.occurred_on < target.occurred_on:
                raise RuleViolation(
                    f"is before the target's date {target.occurred_on}", "occurred_on"
                )
        _RULES[record.type](self, record, target)

    def _check_infraction_recorded(self, record: Record, _: None) -> None:
        pass

    _check_payment_recorded = _check_infraction_recorded
    _check_verification_recorded = _check_infraction_recorded

    def _check_infraction_settled(self, record: Record, target: RecordFacts) -> None:
        if target.type != r.INFRACTION:
            raise TargetError(f"{record.target} is a {target.type}, not an infraction")
        if record.target is not None and record.target.authority != record.authority:
            raise TargetError("must be an infraction recorded by the same authority")
        if target.kind in r.UNSETTLEABLE_KINDS:
            raise TargetError(f"a {target.kind} cannot be settled")
        self._check_live(record, target)
        if target.settled_on is not None:
            raise TargetError(f"{record.target} was already settled on {target.settled_on}")

    def _check_verification_revoked(self, record: Record, target: RecordFacts) -> None:
        if target.type != r.VERIFICATION:
            raise TargetError(f"{record.target} is a {target.type}, not a verification")
        if record.target is not None and record.target.authority != record.authority:
            raise TargetError("must be a verification recorded by the same authority")
        revocation = self.facts.revocation(target)
        if revocation is not None:
            raise TargetError(f"{record.target} is already revoked by {revocation.key}")

    def _check_record_disputed(self, record: Record, target: RecordFacts) -> None:
        if target.type not in (r.INFRACTION, r.PAYMENT, r.VERIFICATION, r.REVOKED):
            raise TargetError(
                f"{record.target} is a {target.type}; only infractions, payments, "
                "verifications and revocations can be disputed"
            )
        if target.open_dispute is not None:
            raise TargetError(f"{record.target} already has an open dispute")

    def _check_dispute_resolved(self, record: Record, target: RecordFacts) -> None:
        if target.type != r.DISPUTED:
            raise TargetError(f"{record.target} is a {target.type}, not a dispute")
        if record.target is not None and record.target.authority != record.authority:
            raise TargetError("must be a dispute opened by the same authority")
        dispute = self.facts.dispute(target)
        if dispute is not None and dispute.resolved_on is not None:
            raise TargetError(f"{record.target} is already resolved")

    def _check_record_vacated(self, record: Record, target: RecordFacts) -> None:
        if target.type != r.INFRACTION:
            raise TargetError(f"{record.target} is a {target.type}, not an infraction")
        if target.vacated:
            raise TargetError(f"{record.target} is already vacated")
        self._check_live(record, target)

    def _check_credit_repaired(self, record: Record, target: RecordFacts) -> None:
        if target.type != r.INFRACTION:
            raise TargetError(f"{record.target} is a {target.type}, not an infraction")
        if target.settled_on is None:
            raise TargetError(f"{record.target} has not been settled")
        if target.repaired_on is not None:
            raise TargetError(f"{record.target} is already repaired")
        if record.occurred_on < target.settled_on:
            raise RuleViolation(
                f"is before the settlement of the target on {target.settled_on}",
                "occurred_on",
            )

    @staticmethod
    def _check_live(record: Record, target: RecordFacts) -> None:
        if target.vacated:
            raise TargetError(f"{record.target} has been vacated")
        removal = target.removal
        if removal is not None:
            raise TargetError(f"{record.target} was removed on dispute {removal.key}")


def _check_not_before_birth(record: Record) -> None:
    if record.occurred_on < record.citizen.birth_date:
        raise RuleViolation(
            f"is before the citizen's birth date {record.citizen.birth_date}", "occurred_on"
        )


_EVENT_CLASSES: dict[str, tuple[type[Citizen.Event], tuple[str, ...]]] = {
    r.INFRACTION: (Citizen.InfractionRecorded, ("kind", "amount")),
    r.SETTLED: (Citizen.InfractionSettled, ("target", "amount")),
    r.PAYMENT: (Citizen.PaymentRecorded, ("kind", "amount")),
    r.VERIFICATION: (Citizen.VerificationRecorded, ("kind", "credential")),
    r.REVOKED: (Citizen.VerificationRevoked, ("target", "reason")),
    r.DISPUTED: (Citizen.RecordDisputed, ("target", "reason")),
    r.RESOLVED: (Citizen.DisputeResolved, ("target", "outcome")),
    r.VACATED: (Citizen.RecordVacated, ("target", "reason")),
    r.REPAIRED: (Citizen.CreditRepaired, ("target",)),
}
_TYPES: dict[type[Any], str] = {cls: t for t, (cls, _) in _EVENT_CLASSES.items()}
# The rule of each record type but enrolment, by name: `Citizen._check_<type>`.
_RULES: dict[str, Callable[[Citizen, Record, Any], None]] = {
    t: getattr(Citizen, "_check_" + t.replace(".", "_")) for t in _EVENT_CLASSES
}


class FileUsed(Aggregate.Event):
    """An event of a Citizen aggregate that is no record: a relying party's use of the
    citizen's file for a purpose, reading the log up to `position`. Shown to the
    citizen, never scored: its `apply` changes nothing. Defined outside `Citizen`,
    whose nested events all carry a record's fields and fold it into the facts."""

    party: str
    purpose: str
    as_of: date
    position: int


class Inquired(FileUsed):
    """The party read a score under a policy."""

    policy: str
    score: int


class Decided(FileUsed):
    """The party asked for a decision under a rule, and this was its outcome; `request`
    is the party's idempotency key for it, if it sent one."""

    rule: str
    outcome: str
    score: int
    request: str | None


RECORD_TYPE_OF_EVENT: dict[type[Any], str] = {**_TYPES, Citizen.Enrolled: r.ENROLLED}
# The uses of a citizen's file a relying party makes, by what they are called.
INQUIRY, DECISION = "inquiry", "decision"
USE_OF_EVENT: dict[type[Any], str] = {Inquired: INQUIRY, Decided: DECISION}


def record_of(resident_id: str | ResidentId, event: Any) -> Record:
    """The wire record an event was written from."""
    record_type = RECORD_TYPE_OF_EVENT[type(event)]
    extra = {
        name: getattr(event, name)
        for name in ("kind", "amount", "credential", "reason", "outcome", "target")
        if hasattr(event, name)
    }
    return Record(
        type=record_type,
        citizen=resident_id
        if isinstance(resident_id, ResidentId)
        else parse_resident_id(resident_id),
        authority=event.authority,
        reference=event.reference,
        occurred_on=event.occurred_on,
        **extra,
    )


class AuthorityRegistry(Aggregate):
    """Every authority ever registered; an auditor replays it to check entitlements."""

    class Opened(Aggregate.Created):
        pass

    class AuthorityRegistered(Aggregate.Event):
        authority_id: str
        name: str
        may_issue: list[str]
        entitled_from: date | None

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, AuthorityRegistry)
            aggregate.authorities[self.authority_id] = Authority(
                self.authority_id,
                self.name,
                tuple(self.may_issue),
                self.entitled_from,
                self.timestamp,
            )

    def __init__(self) -> None:
        self.authorities: dict[str, Authority] = {}

    @classmethod
    def open(cls, at: datetime) -> AuthorityRegistry:
        return cls._create(cls.Opened, id=REGISTRY_ID, timestamp=at)

    def register(
        self,
        authority_id: str,
        name: str,
        may_issue: list[str],
        entitled_from: date | None,
        at: datetime,
    ) -> None:
        """Register a new authority; ids are never reused."""
        if authority_id in self.authorities:
            raise AuthorityExists(f"{authority_id} is already registered")
        check_authority(authority_id, name, may_issue)
        self.trigger_event(
            self.AuthorityRegistered,
            timestamp=at,
            authority_id=authority_id,
            name=name,
            may_issue=list(may_issue),
            entitled_from=entitled_from,
        )


class PartyRegistry(Aggregate):
    """Every relying party ever registered, with its purposes."""

    class Opened(Aggregate.Created):
        pass

    class PartyRegistered(Aggregate.Event):
        party_id: str
        name: str
        purposes: list[str]
        entitled_from: date | None

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, PartyRegistry)
            aggregate.parties[self.party_id] = Party(
                self.party_id, self.name, tuple(self.purposes), self.entitled_from, self.timestamp
            )

    def __init__(self) -> None:
        self.parties: dict[str, Party] = {}

    @classmethod
    def open(cls, at: datetime) -> PartyRegistry:
        return cls._create(cls.Opened, id=PARTY_REGISTRY_ID, timestamp=at)

    def register(
        self, party_id: str, name: str, purposes: list[str], entitled_from: date | None,
        at: datetime,
    ) -> None:  # fmt: skip
        """Register a new relying party; ids are never reused."""
        if party_id in self.parties:
            raise PartyExists(f"{party_id} is already registered")
        check_party(party_id, name, purposes)
        self.trigger_event(
            self.PartyRegistered, timestamp=at, party_id=party_id, name=name,
            purposes=list(dict.fromkeys(purposes)), entitled_from=entitled_from,
        )  # fmt: skip
