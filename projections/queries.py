"""What projection readers ask: scores, explanations, the enforcement list, statistics.

Without a knowledge time, answers come from the stored contributions. With one,
they come from replaying the citizen's records as the ledger knew them then, through
the same pure fold, so both ways give the same answer for the same knowledge.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from itertools import chain
from typing import Any

from ledger.application import CHINA_STANDARD_TIME, Ledger
from ledger.domain.identity import PROVINCES, citizen_id, parse_resident_id
from ledger.errors import LedgerError, UnknownCitizen
from ledger.log import LoggedRecord
from projections import policy as policies
from projections.explanation import Explanation, explain
from projections.policy import Policy
from projections.runner import tracking_name
from projections.scoring import CitizenFacts, Contribution, contributions, fold, score
from projections.store import ViewStore

DEFAULT_SETTING = "default_policy"


def _order(c: Contribution) -> tuple[date, str, str]:
    return (c.counts_from, c.reference, c.rule)


class NotProjected(LedgerError):
    """The citizen is in the ledger but the projection has not reached them yet."""

    field = "citizen"


@dataclass(frozen=True, slots=True)
class ScoreAnswer:
    citizen: str
    policy: str
    as_of: date
    known_at: datetime | None
    score: int
    band: str
    position: int
    lag: int

    def to_json(self) -> dict[str, Any]:
        return {
            "citizen": self.citizen,
            "policy": self.policy,
            "as_of": self.as_of.isoformat(),
            "known_at": self.known_at.isoformat() if self.known_at else None,
            "score": self.score,
            "band": self.band,
            "position": self.position,
        }


@dataclass(frozen=True, slots=True)
class Listing:
    citizen: str
    authority: str
    reference: str
    listed_on: date
    until: date | None

    def to_json(self) -> dict[str, Any]:
        return {
            "citizen": self.citizen,
            "authority": self.authority,
            "reference": self.reference,
            "listed_on": self.listed_on.isoformat(),
            "until": self.until.isoformat() if self.until else None,
        }


@dataclass(frozen=True, slots=True)
class AuditStep:
    """One event of a citizen's history, what it changed, and the scores just after."""

    entry: LoggedRecord
    started: dict[str, list[Contribution]]
    ended: dict[str, list[Contribution]]
    scores: dict[str, tuple[int, str]]
    as_of: date

    def to_json(self) -> dict[str, Any]:
        def items(found: dict[str, list[Contribution]]) -> dict[str, list[dict[str, Any]]]:
            return {name: [c.to_json() for c in cs] for name, cs in found.items()}

        return {
            **self.entry.to_json(),
            "as_of": self.as_of.isoformat(),
            "started": items(self.started),
            "ended": items(self.ended),
            "scores": {name: {"score": s, "band": b} for name, (s, b) in self.scores.items()},
        }


class Scores:
    """Read-side queries over one ledger and its views."""

    def __init__(self, ledger: Ledger, store: ViewStore) -> None:
        self.ledger = ledger
        self.store = store
        self.log = ledger.reader
        self._head_query = self.log.head_query()
        self._policies: dict[str, Policy] = {}
        # The default policy last seen: only a guess, which every score read checks
        # against the setting it reads in the same statement.
        self._default_seen = policies.DEFAULT_POLICY

    def policy(self, name: str | None = None) -> Policy:
        name = name or self._default()
        if name not in self._policies:
            self._policies[name] = policies.load(name)
        return self._policies[name]

    def _default(self) -> str:
        name = self.store.setting(DEFAULT_SETTING) or policies.DEFAULT_POLICY
        self._default_seen = name
        return name

    def all_policies(self) -> list[Policy]:
        return [self.policy(name) for name in policies.available()]

    def promote(self, name: str) -> None:
        self.policy(name)
        self.store.set_setting(DEFAULT_SETTING, name)
        self._default_seen = name

    def _view(
        self, citizen: str, policy: Policy, known_at: datetime | None
    ) -> tuple[str, CitizenFacts, list[Contribution], int, int]:
        resident = parse_resident_id(citizen).value
        head = self.log.head()
        if known_at is not None:
            history = self.history(resident, known_at)
            facts = fold(resident, (entry.record for entry in history))
            position = history[-1].position if history else 0
            return resident, facts, contributions(facts, policy), position, 0
        stored, position = self.store.view(
            tracking_name(policy), policy.name, parse_resident_id(resident).citizen_id
        )
        if stored is None:
            self.history(resident)  # raises UnknownCitizen when never enrolled
            raise NotProjected(
                f"{resident} is in the ledger but {policy.name} has not reached them; "
                f"it lags {head - position} events behind the log"
            )
        # The facts the stored contributions were derived from: the records up to the
        # projection's position.
        known = [e.record for e in self.history(resident) if e.position <= position]
        return resident, fold(resident, known), stored, position, head - position

    def history(self, citizen: str, known_at: datetime | None = None) -> list[LoggedRecord]:
        """A citizen's records in log order, optionally as known at a time."""
        resident = parse_resident_id(citizen)
        logged = self.log.citizen(resident.citizen_id)
        if not logged:
            raise UnknownCitizen(f"{resident.value} has no records in the ledger")
        return [e for e in logged if known_at is None or e.recorded_at <= known_at]

    def score(
        self,
        citizen: str,
        policy: str | None = None,
        as_of: date | None = None,
        known_at: datetime | None = None,
    ) -> ScoreAnswer:
        if known_at is not None:
            chosen = self.policy(policy)
            day = as_of or self.ledger.today()
            resident, _, items, position, lag = self._view(citizen, chosen, known_at)
            result = score(items, day, chosen)
            return ScoreAnswer(resident, chosen.name, day, known_at, result.score,
                               result.band, position, lag)  # fmt: skip
        chosen = self.policy(policy or self._default_seen)
        day = as_of or self.ledger.today()
        resident = parse_resident_id(citizen).value
        cid = citizen_id(resident)
        while True:
            read = self.store.score_inputs(
                tracking_name(chosen), chosen.name, cid, self._head_query, DEFAULT_SETTING
            )
            default = read.setting or policies.DEFAULT_POLICY
            if policy or default == chosen.name:
                break
            # Another policy was promoted since: read again under it.
            self._default_seen = default
            chosen = self.policy(default)
        if read.contributions is None:
            self._view(citizen, chosen, None)  # raises the reason
        result = score(read.contributions or [], day, chosen)
        return ScoreAnswer(resident, chosen.name, day, None, result.score, result.band,
                           read.position, read.head - read.position)  # fmt: skip

    def explain(
        self,
        citizen: str,
        policy: str | None = None,
        as_of: date | None = None,
        known_at: datetime | None = None,
    ) -> tuple[ScoreAnswer, Explanation]:
        chosen = self.policy(policy)
        day = as_of or self.ledger.today()
        resident, facts, items, position, lag = self._view(citizen, chosen, known_at)
        explanation = explain(facts, items, day, chosen)
        answer = ScoreAnswer(resident, chosen.name, day, known_at, explanation.score.score,
                             explanation.score.band, position, lag)  # fmt: skip
        return answer, explanation

    def audit_history(
        self, citizen: str, known_at: datetime | None = None, as_of: date | None = None
    ) -> list[AuditStep]:
        """Each event of the citizen's history as known at a time, with the contributions
        it started or ended under every policy and the scores just after it, on `as_of`
        or else on the day it was recorded (China Standard Time)."""
        resident = parse_resident_id(citizen).value
        history = self.history(resident, known_at)
        chosen = self.all_policies()
        facts = CitizenFacts(resident)
        before: dict[str, set[Contribution]] = {p.name: set() for p in chosen}
        steps = []
        for entry in history:
            facts.apply(entry.record)
            day = as_of or entry.recorded_at.astimezone(CHINA_STANDARD_TIME).date()
            started: dict[str, list[Contribution]] = {}
            ended: dict[str, list[Contribution]] = {}
            scores: dict[str, tuple[int, str]] = {}
            for item in chosen:
                after = contributions(facts, item)
                now = set(after)
                started[item.name] = [c for c in after if c not in before[item.name]]
                ended[item.name] = sorted(before[item.name] - now, key=_order)
                result = score(after, day, item)
                scores[item.name] = (result.score, result.band)
                before[item.name] = now
            steps.append(AuditStep(entry, started, ended, scores, day))
        return steps

    def enforcement(self, as_of: date | None = None, policy: str | None = None) -> list[Listing]:
        """Citizens with an open, counting judgment default on the day, oldest first."""
        chosen = self.policy(policy)
        day = as_of or self.ledger.today()
        rows = self.store.counting_on(chosen.name, day, chosen.enforcement_kinds, ".open")
        return [
            Listing(resident, c.authority, c.reference, c.counts_from, c.counts_until)
            for resident, c in rows
        ]

    def bands(self, as_of: date, policy: str | None = None) -> dict[tuple[str, str], int]:
        """How many citizens are in each (province, band) on the day."""
        chosen = self.policy(policy)
        by_citizen: dict[str, list[Contribution]] = {
            r: [] for r in self.store.residents(chosen.name)
        }
        for resident, item in self.store.contributions(chosen.name):
            by_citizen[resident].append(item)
        counts: Counter[tuple[str, str]] = Counter()
        for resident, items in by_citizen.items():
            counts[
                (PROVINCES.get(resident[:2], resident[:2]), score(items, as_of, chosen).band)
            ] += 1
        return dict(counts)


def merged(lists: Iterable[list[Listing]]) -> list[Listing]:
    """Lists of several partitions as one, in the order each one is in."""
    return sorted(
        chain.from_iterable(lists),
        key=lambda x: (x.listed_on, x.citizen, x.authority, x.reference),
    )


__all__ = ["Listing", "NotProjected", "ScoreAnswer", "Scores", "UnknownCitizen", "merged"]
