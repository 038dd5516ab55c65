"""Demo data: the default authorities and a synthetic, deterministic population.

The population is a seeded simulation of several years of records at plausible
rates; it produces wire records only, which go through the same append path as any
authority's feed.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from ledger.domain.identity import make_resident_id

YEARS = 6
# A fixed last day, so that a seed always gives the same population.
DEMO_UNTIL = date(2026, 6, 30)


@dataclass(frozen=True)
class DemoAuthority:
    authority_id: str
    name: str
    may_issue: tuple[str, ...]


DEMO_AUTHORITIES = (
    DemoAuthority("civil-registry", "Ministry of Civil Affairs, Civil Registry",
                  ("citizen.enrolled",)),
    DemoAuthority("tax-bureau", "State Taxation Administration",
                  ("infraction.recorded:tax_arrears", "infraction.settled",
                   "payment.recorded:tax_paid_on_time")),
    DemoAuthority("traffic-police", "Traffic Management Bureau",
                  ("infraction.recorded:traffic_fine", "infraction.settled")),
    DemoAuthority("peoples-court", "Intermediate People's Court",
                  ("infraction.recorded:court_judgment", "infraction.recorded:judgment_default",
                   "infraction.recorded:criminal_conviction", "infraction.settled",
                   "record.vacated")),
    DemoAuthority("bank-icbc", "Industrial and Commercial Bank of China",
                  ("infraction.recorded:loan_default", "infraction.settled",
                   "payment.recorded:loan_repaid_on_time")),
    DemoAuthority("bank-ccb", "China Construction Bank",
                  ("infraction.recorded:loan_default", "infraction.settled",
                   "payment.recorded:loan_repaid_on_time")),
    DemoAuthority("univ-tsinghua", "Tsinghua University",
                  ("verification.recorded", "verification.revoked")),
    DemoAuthority("univ-fudan", "Fudan University",
                  ("verification.recorded", "verification.revoked")),
    DemoAuthority("dispute-office", "Credit China Objection Office",
                  ("record.disputed", "dispute.resolved")),
    DemoAuthority("credit-repair-office", "Credit Repair Office",
                  ("credit.repaired",)),
)  # fmt: skip

# Real county-level codes (GB/T 2260), a few per province.
REGIONS = (
    "110101", "110102", "110105", "110108", "120101", "120104", "130102", "130104",
    "140105", "150102", "210102", "210202", "220102", "230102", "310101", "310104",
    "310115", "320102", "320106", "320505", "330102", "330106", "340102", "350102",
    "350203", "360102", "370102", "370202", "410105", "420102", "420106", "430102",
    "440103", "440104", "440106", "440304", "440305", "450102", "460105", "500103",
    "510104", "510107", "520102", "530102", "540102", "610113", "620102", "630102",
    "640104", "650102",
)  # fmt: skip

# Yearly probability of each event for one adult, and who issues it.
INFRACTIONS = (
    # kind, yearly rate, issuers, amount range, probability settled, days to settle
    ("traffic_fine", 0.25, ("traffic-police",), (50, 2000), 0.92, 40),
    ("tax_arrears", 0.03, ("tax-bureau",), (500, 80000), 0.8, 300),
    ("court_judgment", 0.01, ("peoples-court",), (2000, 300000), 0.7, 200),
    ("judgment_default", 0.004, ("peoples-court",), (5000, 500000), 0.4, 400),
    ("loan_default", 0.012, ("bank-icbc", "bank-ccb"), (3000, 400000), 0.6, 300),
    ("criminal_conviction", 0.001, ("peoples-court",), None, 0.0, 0),
)
REPAIRABLE = frozenset({"tax_arrears", "court_judgment", "judgment_default", "loan_default"})


def _amount(rng: random.Random, low: int, high: int) -> str:
    cents = rng.randint(low * 100, high * 100)
    return f"{cents // 100}.{cents % 100:02d}"


class Population:
    """A seeded generator of citizens and their records, as wire dicts."""

    def __init__(self, citizens: int, seed: int, until: date) -> None:
        self.rng = random.Random(seed)
        self.size = citizens
        self.until = until
        self.start = until - timedelta(days=365 * YEARS)
        self.counters: dict[str, int] = {}

    def _reference(self, authority: str, on: date) -> str:
        n = self.counters[authority] = self.counters.get(authority, 0) + 1
        return f"{authority.replace('-', '')[:4].upper()}-{on.year}-{n:08d}"

    def _day(self, low: date, high: date) -> date:
        span = (high - low).days
        return low + timedelta(days=self.rng.randint(0, max(span, 0)))

    def records(self) -> list[dict[str, Any]]:
        """Every record, ordered as a feed would deliver them: by date."""
        keyed: list[tuple[date, int, dict[str, Any]]] = []
        seen: set[str] = set()
        order = 0
        while len(seen) < self.size:
            citizen = self._citizen()
            if citizen in seen:
                continue
            seen.add(citizen)
            for record in self._history(citizen):
                keyed.append((date.fromisoformat(record["occurred_on"]), order, record))
                order += 1
        keyed.sort(key=lambda item: (item[0], item[1]))
        return [record for _, _, record in keyed]

    def _citizen(self) -> str:
        age_days = self.rng.randint(18 * 365 + 5, 85 * 365)
        birth = self.until - timedelta(days=age_days)
        return make_resident_id(self.rng.choice(REGIONS), birth, self.rng.randint(0, 999))

    def _record(self, record_type: str, citizen: str, authority: str, on: date,
                **fields: Any) -> dict[str, Any]:  # fmt: skip
        return {
            "type": record_type, "citizen": citizen, "authority": authority,
            "reference": self._reference(authority, on), "occurred_on": on.isoformat(),
            **fields,
        }  # fmt: skip

    def _history(self, citizen: str) -> Iterator[dict[str, Any]]:
        rng = self.rng
        birth = date(int(citizen[6:10]), int(citizen[10:12]), int(citizen[12:14]))
        adult = _add_years(birth, 18)
        enrolled_on = max(adult, self.start)
        yield self._record("citizen.enrolled", citizen, "civil-registry", enrolled_on)
        years = max((self.until - enrolled_on).days / 365, 0.0)
        events: list[dict[str, Any]] = []
        if rng.random() < 0.35:
            university = rng.choice(("univ-tsinghua", "univ-fudan"))
            on = self._day(enrolled_on, self.until)
            degree = self._record(
                "verification.recorded",
                citizen,
                university,
                on,
                kind="degree",
                credential=f"Bachelor of {rng.choice(_FIELDS)}",
            )
            events.append(degree)
            revoked = self._targeted(
                "verification.revoked",
                citizen,
                university,
                degree,
                30,
                900,
                reason="degree obtained by fraud",
            )
            if revoked is not None and rng.random() < 0.01:
                events.append(revoked)
        if rng.random() < 0.1:
            university = rng.choice(("univ-tsinghua", "univ-fudan"))
            on = self._day(enrolled_on, self.until)
            events.append(
                self._record(
                    "verification.recorded",
                    citizen,
                    university,
                    on,
                    kind="professional_license",
                    credential=f"{rng.choice(_LICENSES)} licence",
                )
            )
        taxpayer = rng.random() < 0.6
        for year in range(enrolled_on.year, self.until.year + 1):
            on = date(year, 6, rng.randint(1, 30))
            if taxpayer and enrolled_on <= on <= self.until:
                events.append(
                    self._record(
                        "payment.recorded",
                        citizen,
                        "tax-bureau",
                        on,
                        kind="tax_paid_on_time",
                        amount=_amount(rng, 100, 50000),
                    )
                )
        borrower = rng.random() < 0.3
        if borrower:
            bank = rng.choice(("bank-icbc", "bank-ccb"))
            for _ in range(_poisson(rng, 1.2 * years)):
                on = self._day(enrolled_on, self.until)
                events.append(
                    self._record(
                        "payment.recorded",
                        citizen,
                        bank,
                        on,
                        kind="loan_repaid_on_time",
                        amount=_amount(rng, 1000, 200000),
                    )
                )
        driver = rng.random() < 0.5
        for kind, rate, issuers, amounts, p_settle, settle_days in INFRACTIONS:
            if kind == "traffic_fine" and not driver:
                continue
            for _ in range(_poisson(rng, rate * years * (2 if kind == "traffic_fine" else 1))):
                events.extend(
                    self._infraction(
                        citizen,
                        kind,
                        rng.choice(issuers),
                        amounts,
                        p_settle,
                        settle_days,
                        enrolled_on,
                    )
                )
        events.sort(key=lambda e: e["occurred_on"])
        yield from _in_dependency_order(events)

    def _infraction(self, citizen: str, kind: str, authority: str,
                    amounts: tuple[int, int] | None, p_settle: float, settle_days: int,
                    enrolled_on: date) -> Iterator[dict[str, Any]]:  # fmt: skip
        rng = self.rng
        on = self._day(enrolled_on, self.until)
        fields = {"kind": kind}
        if amounts is not None:
            fields["amount"] = _amount(rng, *amounts)
        infraction = self._record("infraction.recorded", citizen, authority, on, **fields)
        yield infraction
        if rng.random() < 0.05:
            dispute = self._targeted(
                "record.disputed",
                citizen,
                "dispute-office",
                infraction,
                1,
                60,
                reason="the citizen contests this record",
            )
            if dispute is not None:
                yield dispute
                if rng.random() < 0.8:
                    resolution = self._targeted(
                        "dispute.resolved",
                        citizen,
                        "dispute-office",
                        dispute,
                        5,
                        60,
                        outcome="removed" if rng.random() < 0.3 else "upheld",
                    )
                    if resolution is not None:
                        yield resolution
                        if resolution["outcome"] == "removed":
                            return
        if kind in ("court_judgment", "judgment_default") and rng.random() < 0.02:
            vacated = self._targeted(
                "record.vacated",
                citizen,
                "peoples-court",
                infraction,
                30,
                365,
                reason="set aside on appeal",
            )
            if vacated is not None:
                yield vacated
                return
        if amounts is not None and rng.random() < p_settle:
            settled = self._targeted(
                "infraction.settled",
                citizen,
                authority,
                infraction,
                1,
                settle_days,
                amount=infraction["amount"],
            )
            if settled is not None:
                yield settled
                if kind in REPAIRABLE and rng.random() < 0.2:
                    repaired = self._targeted(
                        "credit.repaired", citizen, "credit-repair-office", settled, 10, 200
                    )
                    if repaired is not None:
                        repaired["target"] = _key(infraction)
                        yield repaired

    def _targeted(self, record_type: str, citizen: str, authority: str, target: dict[str, Any],
                  low: int, high: int, **fields: Any) -> dict[str, Any] | None:  # fmt: skip
        on = date.fromisoformat(target["occurred_on"]) + timedelta(days=self.rng.randint(low, high))
        if on > self.until:
            return None
        return self._record(record_type, citizen, authority, on, target=_key(target), **fields)


def _in_dependency_order(events: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Events sorted by date; a record that acts on another always follows it."""
    emitted: set[tuple[str, str]] = set()
    waiting = list(events)
    while waiting:
        rest = []
        for event in waiting:
            target = event.get("target")
            if target is None or (target["authority"], target["reference"]) in emitted:
                emitted.add((event["authority"], event["reference"]))
                yield event
            else:
                rest.append(event)
        waiting = rest


def _key(record: dict[str, Any]) -> dict[str, str]:
    return {"authority": record["authority"], "reference": record["reference"]}


def _add_years(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return day.replace(year=day.year + years, day=28)


def _poisson(rng: random.Random, mean: float) -> int:
    # Knuth's method: the means here are small.
    limit, k, p = pow(2.718281828459045, -mean), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


_FIELDS = ("Engineering", "Law", "Medicine", "Economics", "Arts", "Science", "Agriculture")
_LICENSES = ("Medical practitioner", "Lawyer", "Certified accountant", "Teacher", "Architect")
