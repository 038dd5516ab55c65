"""What the drill sends: waves of demo citizens, each wave split between overlapping
`ledger append` feeds and HTTP clients, with some citizens' histories begun by one
path and finished by the other.

Every record is valid by construction: the demo's generator makes them, references
are made unique per wave, and a record is only ever sent after those it acts on (the
same feed, earlier; or another path's, once acknowledged).
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from ledger.domain.identity import make_resident_id
from scripts.demo import DEMO_UNTIL, Population

Key = tuple[str, str]
Wire = dict[str, Any]

# The prober's own citizen, kept out of every wave.
PROBE_CITIZEN = make_resident_id("110101", date(1970, 1, 1), 999)


def key(record: Wire) -> Key:
    return (record["authority"], record["reference"])


@dataclass(frozen=True)
class Scale:
    """How much one wave sends."""

    big_lines: int  # over 5,000 lines, so that `ledger append` starts writer processes
    big_feeds: int  # 1, or 2: the same citizens in two orders at once
    small: int  # citizens in the small feeds
    http: int  # citizens sent whole over HTTP
    cross: int  # citizens begun by one path and finished by the other, each way
    clients: int  # HTTP client threads


SHORT = Scale(big_lines=5_050, big_feeds=1, small=50, http=16, cross=12, clients=4)
FULL = Scale(big_lines=6_000, big_feeds=2, small=160, http=60, cross=40, clients=8)


@dataclass
class Feed:
    """An NDJSON feed for `ledger append`; a citizen's lines wait for that citizen's gate
    (records sent by another path) to be acknowledged."""

    name: str
    records: list[Wire]
    gates: dict[str, frozenset[Key]] = field(default_factory=dict)
    big: bool = False


@dataclass
class Chain:
    """One citizen's records for an HTTP client, sent in order once the gate is open."""

    records: list[Wire]
    gate: frozenset[Key] = frozenset()
    at: int = 0


@dataclass
class Wave:
    number: int
    feeds: list[Feed]
    chains: list[list[Chain]]  # per client

    def records(self) -> Iterable[Wire]:
        for feed in self.feeds:
            yield from feed.records
        for chains in self.chains:
            for chain in chains:
                yield from chain.records


def _renamed(record: Wire, wave: int) -> Wire:
    """References unique to the wave, so that waves never collide."""
    out = dict(record, reference=f"W{wave}.{record['reference']}")
    if "target" in out:
        target = out["target"]
        out["target"] = {**target, "reference": f"W{wave}.{target['reference']}"}
    return out


def make_wave(number: int, seed: int, scale: Scale, used: set[str]) -> Wave:
    """A wave of citizens not in `used` (which it extends)."""
    rng = random.Random(seed * 1_000 + number)
    wanted = scale.small + scale.http + 2 * scale.cross + scale.big_lines // 6
    while True:
        by_citizen: dict[str, list[Wire]] = {}
        population = Population(wanted, seed * 1_000 + number, DEMO_UNTIL).records()
        records = [_renamed(record, number) for record in population]
        for record in records:
            by_citizen.setdefault(record["citizen"], []).append(record)
        citizens = [c for c in by_citizen if c not in used]
        rng.shuffle(citizens)
        big: list[str] = []
        lines = 0
        while citizens and lines < scale.big_lines:
            big.append(citizens.pop())
            lines += len(by_citizen[big[-1]])
        if lines >= scale.big_lines and len(citizens) >= scale.small + scale.http + 2 * scale.cross:
            break
        wanted = wanted * 3 // 2
    small = [citizens.pop() for _ in range(scale.small)]
    http = [citizens.pop() for _ in range(scale.http)]
    begun_by_feed = [citizens.pop() for _ in range(scale.cross)]
    begun_over_http = [citizens.pop() for _ in range(scale.cross)]
    used.update(big, small, http, begun_by_feed, begun_over_http)

    def in_date_order(group: Iterable[str]) -> list[Wire]:
        wanted = set(group)
        return [r for r in records if r["citizen"] in wanted]

    def by_citizens(group: Iterable[str]) -> list[Wire]:
        return [r for c in group for r in by_citizen[c]]

    def halves(citizen: str) -> tuple[list[Wire], list[Wire]]:
        history = by_citizen[citizen]
        cut = max(1, len(history) // 2)
        return history[:cut], history[cut:]

    overlap = big[: len(big) // 10]
    feeds = [
        Feed(f"w{number}-big-by-date", in_date_order(big), big=True),
        # The same citizens again, in another order, at once: every record arrives twice.
        Feed(f"w{number}-big-by-citizen", by_citizens(reversed(big)), big=True),
        Feed(f"w{number}-small", in_date_order(small)),
        # Half the small feed's citizens again, and some of the big feeds'.
        Feed(f"w{number}-small-overlap", in_date_order([*small[::2], *overlap])),
        Feed(f"w{number}-heads", [r for c in begun_by_feed for r in halves(c)[0]]),
        Feed(
            f"w{number}-tails",
            [r for c in begun_over_http for r in halves(c)[1]],
            gates={c: frozenset(key(r) for r in halves(c)[0]) for c in begun_over_http},
        ),
    ]
    if scale.big_feeds < 2:
        feeds.pop(1)
    chains: list[list[Chain]] = [[] for _ in range(scale.clients)]
    for i, citizen in enumerate(http):
        chains[i % scale.clients].append(Chain(by_citizen[citizen]))
        if i % 4 == 0:  # sent by two clients at once
            chains[(i + 1) % scale.clients].append(Chain(by_citizen[citizen]))
    for i, citizen in enumerate(begun_by_feed):
        head, tail = halves(citizen)
        if tail:
            chains[i % scale.clients].append(Chain(tail, frozenset(key(r) for r in head)))
    for i, citizen in enumerate(begun_over_http):
        chains[(i + 2) % scale.clients].append(Chain(halves(citizen)[0]))
    for client in chains:
        rng.shuffle(client)
    return Wave(number, feeds, chains)
