"""Audit bundles: a citizen's history, scores and proofs in one JSON file that an
auditor checks with no access to the database.

A bundle holds, for each event: its leaf document (the canonical content that was
hashed into the log), an inclusion proof against the latest signed checkpoint, and
the scores just after it; plus the checkpoint note, the policy's name, and the
explanation on the day asked. `verify_bundle` recomputes every leaf from its
document, checks every proof and the signature, and replays the records to
recompute every score and the explanation.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import orjson

from ledger.domain.identity import parse_resident_id
from ledger.domain.records import Record
from ledger.errors import LedgerError
from ledger.log import record_from_payload, record_type_of_topic
from ledger.transparency import merkle
from ledger.transparency.audit import Log
from ledger.transparency.checkpoint import CheckpointError, Verifier, open_note
from projections import policy as policies
from projections.explanation import explain
from projections.queries import Scores
from projections.scoring import CitizenFacts, contributions, score

FORMAT = "social-credit-ledger/audit-bundle/v1"


class BundleError(LedgerError):
    """A bundle cannot be made, or does not hold."""


def make_bundle(
    scores: Scores,
    citizen: str,
    policy: str | None = None,
    as_of: date | None = None,
    known_at: datetime | None = None,
) -> dict[str, Any]:
    """Everything an auditor needs to check a citizen's history and scores offline."""
    log = Log(scores.ledger)
    kept = log.store.checkpoints()
    if not kept:
        raise BundleError("the log has no checkpoint yet; run `ledger checkpoint`", "checkpoint")
    size, note, _ = kept[-1]
    chosen = scores.policy(policy)
    day = as_of or scores.ledger.today()
    steps = scores.audit_history(citizen, known_at)
    last = log.store.tree_position(size - 1) or 0
    events = []
    for step in steps:
        if step.entry.position > last:
            raise BundleError(
                f"position {step.entry.position} is after the latest checkpoint; "
                "run `ledger checkpoint`", "checkpoint",
            )  # fmt: skip
        proof = log.inclusion(step.entry.position, size)
        document = orjson.loads(scores.log.leaf(step.entry.position))
        events.append({
            "leaf": document,
            "index": proof.index,
            "proof": [h.hex() for h in proof.proof],
            "as_of": step.as_of.isoformat(),
            "score": {"score": step.scores[chosen.name][0], "band": step.scores[chosen.name][1]},
        })  # fmt: skip
    answer, explanation = scores.explain(citizen, chosen.name, day, known_at or _far_future())
    return {
        "format": FORMAT,
        "citizen": answer.citizen,
        "policy": chosen.name,
        "policy_version": chosen.version,
        "as_of": day.isoformat(),
        "known_at": known_at.isoformat() if known_at else None,
        "checkpoint": note,
        "events": events,
        "score": {"score": answer.score, "band": answer.band},
        "explanation": explanation.to_json(),
    }


def _far_future() -> datetime:
    return datetime.fromisoformat("9999-12-31T00:00:00+00:00")


@dataclass(frozen=True, slots=True)
class BundleCheck:
    events: int
    size: int


def verify_bundle(bundle: dict[str, Any], verifier: Verifier) -> BundleCheck:
    """Check a bundle with nothing but its contents and the public key."""
    if bundle.get("format") != FORMAT:
        raise BundleError(f"not an audit bundle of format {FORMAT}", "format")
    try:
        signed = open_note(bundle["checkpoint"], verifier)
    except CheckpointError as e:
        raise BundleError(f"checkpoint: {e.message}", "checkpoint") from None
    chosen = policies.load(bundle["policy"])
    if chosen.version != bundle["policy_version"]:
        raise BundleError("the policy version differs from the bundle's", "policy_version")
    resident = parse_resident_id(bundle["citizen"])
    facts = CitizenFacts(resident.value)
    for number, event in enumerate(bundle["events"], start=1):
        where = f"event {number}"
        data = orjson.dumps(event["leaf"], option=orjson.OPT_SORT_KEYS)
        try:
            merkle.verify_inclusion(
                merkle.leaf_hash(data), event["index"], signed.size,
                [bytes.fromhex(h) for h in event["proof"]], signed.root,
            )  # fmt: skip
        except (merkle.ProofError, ValueError) as e:
            raise BundleError(f"{where} (position {event['leaf'].get('position')}): {e}",
                              "proof") from None  # fmt: skip
        record = _record(event["leaf"], resident.value)
        facts.apply(record)
        result = score(contributions(facts, chosen), date.fromisoformat(event["as_of"]), chosen)
        if {"score": result.score, "band": result.band} != event["score"]:
            raise BundleError(f"{where}: the score after it replays as {result.score} "
                              f"({result.band}), not {event['score']}", "score")  # fmt: skip
    day = date.fromisoformat(bundle["as_of"])
    explanation = explain(facts, contributions(facts, chosen), day, chosen)
    if {"score": explanation.score.score, "band": explanation.score.band} != bundle["score"]:
        raise BundleError("the score on the day asked does not replay", "score")
    if orjson.loads(orjson.dumps(explanation.to_json())) != bundle["explanation"]:
        raise BundleError("the explanation does not replay", "explanation")
    return BundleCheck(len(bundle["events"]), signed.size)


def _record(leaf: dict[str, Any], resident: str) -> Record:
    """The record a leaf document holds. Its type is looked up in the ledger's fixed
    table, never resolved: a bundle's content must not choose what gets imported."""
    position = leaf.get("position")
    topic = leaf.get("type")
    record_type = record_type_of_topic(topic) if isinstance(topic, str) else None
    if record_type is None:
        raise BundleError(
            f"position {position}: {topic!r} is not a type of citizen's record", "events"
        )
    payload = leaf.get("payload")
    try:
        if not isinstance(payload, dict):
            raise TypeError(payload)
        citizen = parse_resident_id(payload.get("resident_id", resident))
        return record_from_payload(record_type, citizen, payload)
    except (KeyError, TypeError, ValueError, ArithmeticError, LedgerError):
        raise BundleError(
            f"position {position}: the payload is not a {record_type} record", "events"
        ) from None
