"""The application service: register authorities, append records, read histories.

Appending is load, act, save, a batch at a time: look the batch's references up in
the record index, load the citizens it touches (one query), apply each record to its
citizen, then write the new events, in the order of the lines, with their index rows
and Merkle tree nodes in one transaction. A save that loses a race to another writer
is retried from a fresh load.

The records are applied and stored without event objects: the citizen takes the
record as its event would (`Citizen.add`), and `record_events` writes the bytes the
mapper would have written for that event, once, with its leaf from the same values.
"""

from __future__ import annotations

import random
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from contextlib import nullcontext
from datetime import date, datetime
from functools import partial
from typing import Any, TypeVar

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import IntegrityError, JSONTranscoder, StoredEvent, Transcoder

from ledger.application.batch import Batch, Line, ReferenceClaims, batched, holds, parse_numbered
from ledger.application.clock import CHINA_STANDARD_TIME, Clock, SystemClock
from ledger.application.reports import AppendReport, Duplicate, HistoryEntry
from ledger.domain import (
    PARTY_REGISTRY_ID,
    REGISTRY_ID,
    AuthorityRegistry,
    Citizen,
    FileUsed,
    PartyRegistry,
)
from ledger.domain.identity import citizen_id, parse_resident_id
from ledger.domain.records import Record, RecordKey
from ledger.domain.registrants import Authority, Party
from ledger.errors import ConcurrencyConflict, DatabaseUnavailable, PurposeRefused, UnknownCitizen
from ledger.garbage import fewer_collections
from ledger.log import (
    CitizenFile,
    LogReader,
    UnreadableLog,
    stored_enrolment,
    stored_facts,
    stored_use_time,
)
from ledger.storage import (
    DEFAULT_URL,
    IndexEntry,
    Outage,
    check_read_versions,
    environment,
    ledger_recorder,
)
from ledger.storage.encoding import DateAsISO, OrjsonTranscoder, RecordKeyAsList, record_events
from ledger.storage.recorder import Claim

BATCH_SIZE = 1000
MAX_ATTEMPTS = 8
# Races lost before a batch is retried holding the writers' gate alone, where nobody
# can change what it reads; a conflict even then means a writer outside the protocol.
OPTIMISTIC_ATTEMPTS = 4
CACHE_SIZE = 50_000


class Ledger(Application[uuid.UUID]):
    """The write side: one log of citizens' records and the authorities that issue them."""

    name = "Ledger"

    def __init__(
        self,
        url: str = DEFAULT_URL,
        clock: Clock | None = None,
        env: Mapping[str, str] | None = None,
        patience: float = 0.0,
        registries: Ledger | None = None,
    ) -> None:
        """`patience`: seconds an append waits for a database that stopped answering to
        come back, retrying its batch, before it gives up with DatabaseUnavailable.
        `registries`: the ledger whose registries of authorities and relying parties this
        one checks against and registers in (a partition's, its catalog), else its own."""
        # A partition's ledger is one of many in its process: a small pool each.
        pool = PARTITION_POOL if registries is not None else {}
        super().__init__(env={**environment(url), **pool, **(env or {})})
        self.url = url
        self.clock: Clock = clock or SystemClock()
        self.store = ledger_recorder(self.recorder)
        # What readers of the log use: decoded records, never event objects.
        self.reader = LogReader(self.store, url)
        self._citizens: OrderedDict[uuid.UUID, Citizen] = OrderedDict()
        self._registry_cache: AuthorityRegistry | None = None
        self._party_cache: PartyRegistry | None = None
        self.patience = patience
        self._registries = registries
        # Set by a partitioned ledger on each partition's ledger.
        self.claims: ReferenceClaims | None = None

    def construct_transcoder(self) -> Transcoder:
        transcoder = OrjsonTranscoder()
        self.register_transcodings(transcoder)
        return transcoder

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        transcoder.register(DateAsISO())
        transcoder.register(RecordKeyAsList())

    # Authorities

    def register_authority(
        self,
        authority_id: str,
        name: str,
        may_issue: list[str],
        entitled_from: date | None = None,
    ) -> int:
        """Register an authority; returns the position of the registration."""
        if self._registries is not None:
            return self._registries.register_authority(authority_id, name, may_issue, entitled_from)
        return self._register(
            REGISTRY_ID, AuthorityRegistry.open,
            lambda registry, now: registry.register(
                authority_id, name, may_issue, entitled_from, now),
        )  # fmt: skip

    def register_party(
        self, party_id: str, name: str, purposes: list[str], entitled_from: date | None = None
    ) -> int:
        """Register a relying party for purposes; returns the position of the registration."""
        if self._registries is not None:
            return self._registries.register_party(party_id, name, purposes, entitled_from)
        return self._register(
            PARTY_REGISTRY_ID, PartyRegistry.open,
            lambda registry, now: registry.register(party_id, name, purposes, entitled_from, now),
        )  # fmt: skip

    def authorities(self) -> list[Authority]:
        """Every registered authority, in the order registered."""
        registry = self._current_registry()
        return list(registry.authorities.values()) if registry else []

    def parties(self) -> list[Party]:
        """Every registered relying party, in the order registered."""
        if self._registries is not None:
            return self._registries.parties()
        registry = self._party_cache = self._brought_up_to_date(
            PARTY_REGISTRY_ID, self._party_cache
        )
        return list(registry.parties.values()) if registry else []

    def party(self, party_id: str) -> Party:
        """The registered relying party `party_id`; PurposeRefused if there is none."""
        for party in self.parties():
            if party.party_id == party_id:
                return party
        raise PurposeRefused(f"{party_id} is not a registered relying party", "party")

    def _current_registry(self) -> AuthorityRegistry | None:
        """The registry as stored now, to read from: the cached one brought up to date
        with whatever other processes registered since, in one query."""
        if self._registries is not None:
            return self._registries._current_registry()
        self._registry_cache = self._brought_up_to_date(REGISTRY_ID, self._registry_cache)
        return self._registry_cache

    def _brought_up_to_date(
        self, registry_id: uuid.UUID, cached: R | None, events: Iterable[StoredEvent] | None = None
    ) -> R | None:
        """`cached` with the registry's events after its version: `events`, if they were
        read already, else read now."""
        if events is None:
            events = self.store.events_after({registry_id: cached.version if cached else 0})
        for stored in events:
            event = self.mapper.to_domain_event(stored)
            assert isinstance(event, AuthorityRegistry.Event | PartyRegistry.Event)
            cached = event.mutate(cached)
        return cached

    def _register(
        self,
        registry_id: uuid.UUID,
        open_registry: Callable[[datetime], R],
        act: Callable[[R, datetime], None],
    ) -> int:
        for _ in range(MAX_ATTEMPTS):
            now = self.clock.now()
            try:
                registry: R = self.repository.get(registry_id)
            except AggregateNotFoundError:
                registry = open_registry(now)
            act(registry, now)
            try:
                recordings = self.save(registry)
            except IntegrityError:
                continue
            return recordings[-1].notification.id
        raise ConcurrencyConflict("the registry kept changing; try again")

    # Appending

    def append_lines(
        self,
        lines: Iterable[tuple[int, Line]],
        batch_size: int = BATCH_SIZE,
        progress: Callable[[int], None] | None = None,
    ) -> AppendReport:
        """Append numbered NDJSON lines in order, each as text or already decoded; each
        bad line is rejected alone."""
        report = AppendReport()
        with fewer_collections():
            for batch in batched(lines, batch_size):
                parsed, rejected = parse_numbered(batch)
                report.rejected.extend(rejected)
                self._append_parsed(parsed, report)
                if progress is not None:
                    progress(len(batch))
        report.rejected.sort(key=lambda x: x.line)
        return report

    def append_records(self, records: Iterable[Mapping[str, Any]]) -> AppendReport:
        """Append already decoded records, numbered from 1, as one batch."""
        report = AppendReport()
        parsed, report.rejected = parse_numbered(list(enumerate(records, start=1)))
        self._append_parsed(parsed, report)
        return report

    def _append_parsed(self, parsed: list[tuple[int, Record]], report: AppendReport) -> None:
        if not parsed:
            return
        attempt = 0
        outage = Outage(self.url, self.patience)
        while attempt < OPTIMISTIC_ATTEMPTS + MAX_ATTEMPTS:
            exclusive = attempt >= OPTIMISTIC_ATTEMPTS
            batch: Batch | None = None
            try:
                with outage.unless_over(), self.store.exclusive_writer() if exclusive \
                        else nullcontext():  # fmt: skip
                    batch = self._apply(parsed)
                    positions = self._save(batch, exclusive)
            except DatabaseUnavailable as error:
                # A save cut off at its commit may have been written: sent again, its
                # records come back as duplicates of themselves, never twice.
                self._forget(batch.citizens if batch else ())
                outage.wait(error)
                continue
            except IntegrityError:
                attempt += 1
                report.retries += 1
                self._forget(batch.citizens if batch else ())
                time.sleep(random.uniform(0, 0.005 * 2 ** min(attempt, 6)))  # noqa: S311 - jitter
                continue
            except BaseException:
                self._forget(batch.citizens if batch else ())
                raise
            self._remember(batch.citizens)
            self._report(batch, positions, report)
            return
        raise ConcurrencyConflict(
            "other writers kept changing the same citizens; "
            f"the batch of {len(parsed)} records was not written, send it again"
        )

    def _save(self, batch: Batch, exclusive: bool) -> list[int]:
        """Write the batch's new records as events, with their index rows, in one
        transaction, provided the citizens it read but did not change are still as
        read; else IntegrityError. Returns the position of each new record in turn.

        `Application.save` would do the same from event objects, with runtime
        protocol checks on every event; a bulk feed cannot afford them.
        """
        changed = {cid for cid, _, _ in batch.new}
        unchanged = {cid: v for cid, v in batch.read_versions.items() if cid not in changed}
        if not batch.new:
            # A refusal is only as good as the state it was decided on.
            if batch.rejected:
                check_read_versions({"read_versions": unchanged}, self.store.versions(unchanged))
            return []
        events, leaves = record_events(batch.new, batch.now)
        claims, confirm = self.claims, None
        if claims is not None:
            wanted = [(RecordKey(a, r), cid, d) for a, r, cid, _, d in batch.index_rows]
            confirm = partial(claims.confirm, wanted, batch.claimed_since)
        positions = self.recorder.insert_events(
            events, index_rows=batch.index_rows, read_versions=unchanged,
            exclusive=exclusive, leaves=leaves, confirm=confirm,
        )  # fmt: skip
        return list(positions or ())

    def _report(self, batch: Batch, positions: list[int], report: AppendReport) -> None:
        stored = patiently(
            self.url,
            self.patience,
            lambda: self.store.positions(
                (entry.citizen_id, entry.version) for _, entry in batch.stored_duplicates
            ),
        )
        report.appended += len(positions)
        report.positions.extend(zip(batch.lines, positions, strict=True))
        for line, entry in batch.stored_duplicates:
            report.duplicates.append(Duplicate(line, stored[(entry.citizen_id, entry.version)]))
        for line, pending in batch.batch_duplicates:
            report.duplicates.append(Duplicate(line, positions[pending.index]))
        report.rejected.extend(batch.rejected)

    def _apply(self, parsed: list[tuple[int, Record]]) -> Batch:
        # Citizens first, then the index: whatever another writer commits in between
        # is then seen as a duplicate, and our stale citizen fails the save and is
        # reloaded; the other order could see a record in a citizen but not the index.
        ids = {citizen_id(rec.citizen.value) for _, rec in parsed}
        citizens, registry = self._load(ids)
        # A target among its citizen's records is known to be theirs: only the others
        # are looked up, to tell another citizen's record from none.
        keys = {rec.key for _, rec in parsed} | {
            rec.target for _, rec in parsed
            if rec.target and not holds(citizens, rec.citizen.value, rec.target)
        }  # fmt: skip
        batch = Batch(
            known=self.store.lookup(keys),
            authorities=registry.authorities if registry else {},
            citizens=citizens,
            read_versions={i: citizens[i].version if i in citizens else 0 for i in ids},
            today=self.today(),
            now=self.clock.now(),
        )
        batch.claimed_since = time.monotonic()
        batch.take(parsed, self._claimed(parsed, batch.known))
        return batch

    def _claimed(
        self, parsed: list[tuple[int, Record]], known: Mapping[RecordKey, IndexEntry]
    ) -> set[RecordKey]:
        """The claims on the references new to this ledger, made before the records
        are applied; the keys refused."""
        if self.claims is None:
            return set()
        wanted: dict[RecordKey, Claim] = {}
        for _, rec in parsed:
            if rec.key not in known and rec.key not in wanted:
                wanted[rec.key] = (rec.key, citizen_id(rec.citizen.value), rec.digest)
        return self.claims.claim(list(wanted.values())) if wanted else set()

    def today(self) -> date:
        """Today by the ledger's clock, in China Standard Time."""
        return self.clock.now().astimezone(CHINA_STANDARD_TIME).date()

    def _load(
        self, ids: set[uuid.UUID]
    ) -> tuple[dict[uuid.UUID, Citizen], AuthorityRegistry | None]:
        """The citizens as stored now: cached ones brought up to date with whatever
        other processes wrote since, in one query with the ones not cached; and the
        registry as stored now, its new events read in the same query (unless it is
        kept elsewhere), so that a batch takes one round trip less."""
        cached = {i: self._citizens[i] for i in ids if i in self._citizens}
        found: dict[uuid.UUID, Citizen] = dict(cached)
        after = {i: cached[i].version if i in cached else 0 for i in ids}
        registry = self._registry_cache
        registered: list[StoredEvent] = []
        if self._registries is None:
            after[REGISTRY_ID] = registry.version if registry else 0
        current: uuid.UUID | str | None = None
        citizen: Citizen | None = None
        # Decoded as the log's port decodes the log, not through event objects: loading
        # a citizen's history costs a few microseconds an event, not tens.
        key = uuid.UUID(int=0)
        for stored in self.store.events_after(after):
            cid, version = stored.originator_id, stored.originator_version
            if cid != current:
                current = cid
                key = cid if type(cid) is uuid.UUID else uuid.UUID(str(cid))
                citizen = cached.get(key) if cached else None
            if key == REGISTRY_ID:
                registered.append(stored)
                continue
            used_at = stored_use_time(key, version, stored.topic, stored.state)
            if used_at is not None:
                if citizen is None:
                    raise UnreadableLog(f"citizen {key}: a use of their file before the enrolment")
                try:
                    citizen.replay_use(version, used_at)
                except ValueError as e:
                    raise UnreadableLog(str(e)) from None
                found[citizen.id] = citizen
                continue
            if citizen is None:
                record, at = stored_enrolment(key, version, stored.topic, stored.state)
                citizen = Citizen.reopened(record, at)
                if citizen.id != key:
                    raise UnreadableLog(f"citizen {key}: enrolled as {record.citizen.value}")
            else:
                # Only what the rules read of each later record: its facts.
                record_type, parts, at = stored_facts(key, version, stored.topic, stored.state)
                try:
                    citizen.replay_facts(record_type, parts, version, at)
                except ValueError as e:
                    raise UnreadableLog(str(e)) from None
            found[citizen.id] = citizen
        if self._registries is not None:
            return found, self._registries._current_registry()
        self._registry_cache = self._brought_up_to_date(REGISTRY_ID, registry, registered)
        return found, self._registry_cache

    def _remember(self, citizens: dict[uuid.UUID, Citizen]) -> None:
        for cid, citizen in citizens.items():
            self._citizens[cid] = citizen
            self._citizens.move_to_end(cid)
        while len(self._citizens) > CACHE_SIZE:
            self._citizens.popitem(last=False)

    def _forget(self, citizens: Iterable[uuid.UUID]) -> None:
        for cid in citizens:
            self._citizens.pop(cid, None)

    # Reading

    def history(self, resident_id: str, known_at: datetime | None = None) -> list[HistoryEntry]:
        """A citizen's records in the order received, optionally as known at a time."""
        resident = parse_resident_id(resident_id)
        logged = self.reader.citizen(resident.citizen_id)
        if not logged:
            raise UnknownCitizen(f"{resident.value} has no records in the ledger")
        return [
            HistoryEntry(e.position, e.recorded_at, e.version, e.record)
            for e in logged
            if known_at is None or e.recorded_at <= known_at
        ]

    # Uses of a citizen's file by relying parties

    def record_use(
        self, citizen: uuid.UUID, use: Callable[[CitizenFile], tuple[T, Used]]
    ) -> tuple[T, CitizenFile, int, datetime]:
        """Use a citizen's file and record the use as their next event: load, act, save.
        `use` is given the file as the log holds it and returns what it found and the
        event to record (its class and fields). A file that changed before the event was
        saved is read and used again; after OPTIMISTIC_ATTEMPTS, holding the writers'
        gate alone, so that it cannot change. Returns what `use` found, the file it
        found it in, and the event's position and time."""
        attempt = 0
        while True:
            exclusive = attempt >= OPTIMISTIC_ATTEMPTS
            with self.store.exclusive_writer() if exclusive else nullcontext():
                file = self.reader.file(citizen)
                if not file.records:
                    raise UnknownCitizen(f"{citizen} has no records in the ledger")
                found, (used, fields) = use(file)
                now = self.clock.now()
                event = used(originator_id=citizen, originator_version=file.version + 1,
                             timestamp=now, **fields)  # fmt: skip
                try:
                    recordings = self.events.put([event], exclusive=exclusive)
                except IntegrityError:
                    if exclusive:
                        raise
                    attempt += 1
                    time.sleep(random.uniform(0, 0.005 * 2**attempt))  # noqa: S311 - jitter
                    continue
            return found, file, recordings[0].notification.id, now

    def max_position(self) -> int:
        """The position of the last event in the log, 0 when it is empty."""
        return self.reader.head()


T = TypeVar("T")
PARTITION_POOL = {"POSTGRES_POOL_SIZE": "1", "POSTGRES_MAX_OVERFLOW": "2"}
# A use of a citizen's file as its event: the event's class and its own fields.
Used = tuple[type[FileUsed], dict[str, Any]]
# A registry: of the authorities or of the relying parties.
R = TypeVar("R", AuthorityRegistry, PartyRegistry)


def patiently(url: str, patience: float, step: Callable[[], T]) -> T:
    """Run a step, running it again while the database is away, for up to `patience`
    seconds since it last answered."""
    outage = Outage(url, patience)
    while True:
        try:
            with outage.unless_over():
                return step()
        except DatabaseUnavailable as error:
            outage.wait(error)


def open_patiently(
    url: str, clock: Clock | None = None, patience: float = 0.0, registries: Ledger | None = None,
    env: Mapping[str, str] | None = None,
) -> Ledger:  # fmt: skip
    """A ledger opened once the database answers, waiting up to `patience` seconds."""
    return patiently(url, patience, lambda: Ledger(
        url, clock=clock, env=env, patience=patience, registries=registries))  # fmt: skip
