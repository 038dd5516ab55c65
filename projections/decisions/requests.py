"""What a relying party asks of a citizen's file: a decision, or a score. Each request
is checked against the party's purposes, answered from the citizen's file as the log
holds it (the records themselves, not a projection), and recorded on the citizen's
aggregate before it is answered. The recorded event directly follows the last event
the answer read (a file that changed meanwhile is read again), so replaying the file
as known at the event's time gives the same answer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, TypeVar

from ledger.application import CHINA_STANDARD_TIME, Ledger, Used
from ledger.domain import DECISION, Decided, FileUsed, Inquired
from ledger.domain.identity import ResidentId, parse_resident_id
from ledger.errors import PurposeRefused, ReferenceConflict, UnknownCitizen
from ledger.log import CitizenFile, LoggedRecord, LoggedUse
from projections import policy as policies
from projections.decisions.engine import Decision, decide
from projections.decisions.rules import (
    DecisionRule,
    DecisionRuleError,
    for_purpose,
    load,
    outside_purpose,
)
from projections.policy import Policy
from projections.scoring import Score, contributions, fold, score

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Answer:
    """A decision as the party gets it: for whom, read up to which position, and, when
    it was recorded, the position and time of its event (none for a replay)."""

    decision: Decision
    party: str
    resident_id: str
    read_up_to: int
    position: int | None
    recorded_at: datetime | None
    # Answered again for a request already decided (its idempotency key), not recorded.
    repeated: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "citizen": self.resident_id,
            "party": self.party,
            "read_up_to": self.read_up_to,
            "position": self.position,
            "recorded_at": self.recorded_at.isoformat() if self.recorded_at else None,
            **self.decision.to_json(),
        }


@dataclass(frozen=True, slots=True)
class ScoreRead:
    """A score a party read for a purpose, and the inquiry that recorded it."""

    resident_id: str
    party: str
    purpose: str
    policy: Policy
    as_of: date
    score: Score
    read_up_to: int
    position: int
    recorded_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "citizen": self.resident_id, "party": self.party, "purpose": self.purpose,
            "policy": self.policy.name, "as_of": self.as_of.isoformat(),
            "known_at": None, "score": self.score.score, "band": self.score.band,
            "position": self.read_up_to, "inquiry_position": self.position,
            "recorded_at": self.recorded_at.isoformat(),
        }  # fmt: skip


def rule_for(purpose: str, name: str | None) -> DecisionRule:
    """The rule named, which must be made for `purpose`; by default the purpose's rule
    with the last name (the newest version)."""
    if name is None:
        made = for_purpose(purpose)
        if not made:
            raise DecisionRuleError(f"no decision rule is made for the purpose {purpose!r}")
        name = made[-1]
    rule = load(name)
    if rule.purpose.name != purpose:
        raise DecisionRuleError(f"{rule.name} is a rule for {rule.purpose.name}, not {purpose}")
    return rule


def request_decision(
    ledger: Ledger,
    party_id: str,
    purpose: str,
    citizen: str,
    rule_name: str | None = None,
    as_of: date | None = None,
    known_at: datetime | None = None,
    request: str | None = None,
) -> Answer:
    """Decide for `party_id`, asking for `purpose`, about `citizen` on `as_of` (today
    by default) and record it; with `known_at`, replay the decision as the file stood
    then, recording nothing (an auditor's check, not a party's use).

    `request` is the party's idempotency key: asked again with a key its earlier
    decision about this citizen carries, the answer is that decision (replayed from
    the records it read), and nothing new is recorded."""
    ledger.party(party_id).check_entitled(purpose, ledger.today())
    rule = rule_for(purpose, rule_name)
    resident = parse_resident_id(citizen)
    day = as_of or (known_at.astimezone(CHINA_STANDARD_TIME).date() if known_at is not None
                    else ledger.today())  # fmt: skip
    if known_at is not None:
        file = ledger.reader.file(resident.citizen_id)
        records = [r for r in file.records if r.recorded_at <= known_at]
        if not records:
            raise UnknownCitizen(f"{resident.value} had no records in the ledger by {known_at}")
        decision = _decided(rule, resident.value, records, day)
        return Answer(decision, party_id, resident.value, records[-1].position, None, None)

    def decided(records: list[LoggedRecord], on: date) -> tuple[Decision, dict[str, Any]]:
        decision = _decided(rule, resident.value, records, on)
        return decision, {
            "rule": rule.name,
            "outcome": decision.outcome,
            "score": decision.explanation.score.score,
            "request": request,
        }

    def earlier(file: CitizenFile) -> LoggedUse | None:
        for prior in file.uses:
            if (request is not None and prior.use == DECISION
                    and prior.fields.get("party") == party_id
                    and prior.fields.get("request") == request):  # fmt: skip
                if (prior.fields.get("purpose"), prior.fields.get("rule")) != (purpose, rule.name):
                    raise RequestConflict(
                        f"request {request} was a {prior.fields.get('purpose')} decision "
                        f"under {prior.fields.get('rule')}; send a new key for another"
                    )
                return prior
        return None

    decision, read_up_to, position, at, repeated = _recorded(
        ledger, resident, Decided, party_id, purpose, day, decided, earlier
    )
    return Answer(decision, party_id, resident.value, read_up_to, position, at, repeated)


def request_score(
    ledger: Ledger,
    party_id: str,
    purpose: str,
    citizen: str,
    policy_name: str | None = None,
    as_of: date | None = None,
) -> ScoreRead:
    """A citizen's score for `party_id`, asking for `purpose`, under a policy that counts
    nothing outside the purpose (by default that of the purpose's rule), recorded as
    an inquiry on their file."""
    ledger.party(party_id).check_entitled(purpose, ledger.today())
    rule = rule_for(purpose, None)
    chosen = rule.policy if policy_name is None else policies.load(policy_name)
    outside = outside_purpose(chosen, rule.purpose)
    if outside:
        raise PurposeRefused(f"policy {chosen.name} counts {outside[0]}, which the purpose "
                             f"{purpose} may not take into account")  # fmt: skip
    resident = parse_resident_id(citizen)
    day = as_of or ledger.today()

    def scored(records: list[LoggedRecord], on: date) -> tuple[Score, dict[str, Any]]:
        facts = fold(resident.value, [logged.record for logged in records])
        found = score(contributions(facts, chosen), on, chosen)
        return found, {"policy": chosen.name, "score": found.score}

    found, read_up_to, position, at, _ = _recorded(
        ledger, resident, Inquired, party_id, purpose, day, scored
    )
    return ScoreRead(resident.value, party_id, purpose, chosen, day, found, read_up_to,
                     position, at)  # fmt: skip


class RequestConflict(ReferenceConflict):
    """An idempotency key sent again with another request than its first."""

    field = "request"


class _Repeated(Exception):
    """The use asked for is already on the file (found by its idempotency key)."""

    def __init__(self, prior: LoggedUse, file: CitizenFile) -> None:
        super().__init__(prior.position)
        self.prior, self.file = prior, file


def _recorded(
    ledger: Ledger,
    resident: ResidentId,
    used: type[FileUsed],
    party_id: str,
    purpose: str,
    day: date,
    answer: Callable[[list[LoggedRecord], date], tuple[T, dict[str, Any]]],
    earlier: Callable[[CitizenFile], LoggedUse | None] = lambda _: None,
) -> tuple[T, int, int, datetime, bool]:
    """`answer` of the citizen's records on `day`, recorded as a `used` event that
    follows the last event it read: (the answer, the last record's position, the
    event's position and time, and whether it was already recorded). A use `earlier`
    finds on the file is answered again from the records it read, and not recorded
    twice."""

    def use(file: CitizenFile) -> tuple[tuple[T, int], Used]:
        prior = earlier(file)
        if prior is not None:
            raise _Repeated(prior, file)
        found, fields = answer(file.records, day)
        read_up_to = file.records[-1].position
        return (found, read_up_to), (
            used,
            {"party": party_id, "purpose": purpose, "as_of": day, "position": read_up_to, **fields},
        )

    try:
        (found, read_up_to), _, position, at = ledger.record_use(resident.citizen_id, use)
    except UnknownCitizen:
        raise UnknownCitizen(f"{resident.value} has no records in the ledger") from None
    except _Repeated as repeated:
        prior = repeated.prior
        read = [r for r in repeated.file.records if r.version < prior.version]
        found, _ = answer(read, date.fromisoformat(str(prior.fields["as_of"])))
        return found, read[-1].position, prior.position, prior.recorded_at, True
    return found, read_up_to, position, at, False


def _decided(rule: DecisionRule, resident: str, records: list[LoggedRecord], day: date) -> Decision:
    facts = fold(resident, [logged.record for logged in records])
    return decide(rule, facts, contributions(facts, rule.policy), day)
