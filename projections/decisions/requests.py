"""A relying party's request for a decision: checked against the party's purposes,
decided from the citizen's file as the log holds it, and recorded on the citizen's
aggregate before it is answered. A decision is made from the records themselves, not
from a projection, and its event directly follows the last event it read (a file
that changed meanwhile is read again), so replaying the file as known at the
decision's recorded time gives the same decision.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from ledger.application import CHINA_STANDARD_TIME, Ledger
from ledger.domain import Decided
from ledger.domain.identity import parse_resident_id
from ledger.errors import StaleFile, UnknownCitizen
from ledger.log import LoggedRecord
from projections.decisions.engine import Decision, decide
from projections.decisions.rules import DecisionRule, DecisionRuleError, for_purpose, load
from projections.scoring import contributions, fold

# A file that keeps changing under a decision is read again this often, then refused.
ATTEMPTS = 5


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

    def to_json(self) -> dict[str, Any]:
        return {
            "citizen": self.resident_id,
            "party": self.party,
            "read_up_to": self.read_up_to,
            "position": self.position,
            "recorded_at": self.recorded_at.isoformat() if self.recorded_at else None,
            **self.decision.to_json(),
        }


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
) -> Answer:
    """Decide for `party_id`, asking for `purpose`, about `citizen` on `as_of` (today
    by default) and record it; with `known_at`, replay the decision as the file stood
    then, recording nothing (an auditor's check, not a party's use)."""
    party = ledger.party(party_id)
    party.check_entitled(purpose, ledger.today())
    rule = rule_for(purpose, rule_name)
    resident = parse_resident_id(citizen)
    cid = resident.citizen_id
    if as_of is None:
        as_of = (known_at.astimezone(CHINA_STANDARD_TIME).date() if known_at is not None
                 else ledger.today())  # fmt: skip
    for _ in range(ATTEMPTS):
        file = ledger.reader.file(cid)
        records = [r for r in file.records if known_at is None or r.recorded_at <= known_at]
        if not records:
            raise UnknownCitizen(f"{resident.value} has no records in the ledger")
        decision = _decided(rule, resident.value, records, as_of)
        read_up_to = records[-1].position
        if known_at is not None:
            return Answer(decision, party.party_id, resident.value, read_up_to, None, None)
        try:
            position = ledger.record_use(
                cid, file.version, Decided, party=party.party_id, purpose=purpose,
                as_of=as_of, position=read_up_to, rule=rule.name, outcome=decision.outcome,
                score=decision.explanation.score.score,
            )  # fmt: skip
        except StaleFile:
            continue
        used = next(u for u in ledger.reader.file(cid).uses if u.position == position)
        return Answer(decision, party.party_id, resident.value, read_up_to, position,
                      used.recorded_at)  # fmt: skip
    raise StaleFile(f"{resident.value}'s file kept changing; ask again")


def _decided(rule: DecisionRule, resident: str, records: list[LoggedRecord], day: date) -> Decision:
    facts = fold(resident, [logged.record for logged in records])
    return decide(rule, facts, contributions(facts, rule.policy), day)
