"""Audit bundles: a citizen's history, scores and proofs in one JSON file that an
auditor checks with no access to the database.

A bundle holds, for each event: its leaf document (the canonical content that was
hashed into the log), an inclusion proof against the latest signed checkpoint, and
the scores just after it; the same leaf and proof for every inquiry and decision made
about the citizen; plus the checkpoint note, the policy's name, and the explanation on
the day asked. `verify_bundle` recomputes every leaf from its document, checks every
proof and the signature, replays the records to recompute every score and the
explanation, and replays every decision from the records it read.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import orjson

from ledger.domain import DECISION
from ledger.domain.identity import parse_resident_id
from ledger.domain.records import Record
from ledger.errors import LedgerError
from ledger.log import USE_OF_TOPIC, record_from_payload, record_type_of_topic
from ledger.partitioned.checkpoints import TopLink, check_top_link
from ledger.transparency import merkle
from ledger.transparency.audit import Log
from ledger.transparency.checkpoint import CheckpointError, Verifier, open_note
from projections import decisions
from projections import policy as policies
from projections.explanation import explain
from projections.queries import Scores
from projections.scoring import CitizenFacts, contributions, fold, score

FORMAT = "social-credit-ledger/audit-bundle/v1"


class BundleError(LedgerError):
    """A bundle cannot be made, or does not hold."""


def make_bundle(
    scores: Scores,
    citizen: str,
    policy: str | None = None,
    as_of: date | None = None,
    known_at: datetime | None = None,
    top: TopLink | None = None,
) -> dict[str, Any]:
    """Everything an auditor needs to check a citizen's history and scores offline.
    On a partitioned ledger, `top` gives, for the size of the partition's checkpoint,
    its link to the signed checkpoint of the whole ledger (ledger.partitioned)."""
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
    uses = []
    for use in scores.ledger.reader.file(parse_resident_id(citizen).citizen_id).uses:
        if known_at is not None and use.recorded_at > known_at:
            continue
        if use.position > last:
            raise BundleError(f"position {use.position} is after the latest checkpoint; "
                              "run `ledger checkpoint`", "checkpoint")  # fmt: skip
        proof = log.inclusion(use.position, size)
        uses.append({"leaf": orjson.loads(scores.log.leaf(use.position)), "index": proof.index,
                     "proof": [h.hex() for h in proof.proof]})  # fmt: skip
    answer, explanation = scores.explain(citizen, chosen.name, day, known_at or _far_future())
    link = top(size) if top is not None else None
    return {
        **({"top": link} if link is not None else {}),
        "format": FORMAT,
        "citizen": answer.citizen,
        "policy": chosen.name,
        "policy_version": chosen.version,
        "as_of": day.isoformat(),
        "known_at": known_at.isoformat() if known_at else None,
        "checkpoint": note,
        "events": events,
        "uses": uses,
        "score": {"score": answer.score, "band": answer.band},
        "explanation": explanation.to_json(),
    }


def _far_future() -> datetime:
    return datetime.fromisoformat("9999-12-31T00:00:00+00:00")


@dataclass(frozen=True, slots=True)
class BundleCheck:
    events: int
    size: int
    uses: int = 0
    # On a partitioned ledger: how many logs the whole ledger's checkpoint covers.
    logs: int | None = None


def verify_bundle(bundle: dict[str, Any], verifier: Verifier) -> BundleCheck:
    """Check a bundle with nothing but its contents and the public key."""
    if bundle.get("format") != FORMAT:
        raise BundleError(f"not an audit bundle of format {FORMAT}", "format")
    try:
        signed = open_note(bundle["checkpoint"], verifier)
    except CheckpointError as e:
        raise BundleError(f"checkpoint: {e.message}", "checkpoint") from None
    logs = None
    if "top" in bundle:
        try:
            logs = check_top_link(bundle["top"], signed, verifier)
        except (merkle.ProofError, CheckpointError, KeyError, TypeError, ValueError) as e:
            raise BundleError(f"the link to the whole ledger's checkpoint: {e}", "top") from None
    chosen = policies.load(bundle["policy"])
    if chosen.version != bundle["policy_version"]:
        raise BundleError("the policy version differs from the bundle's", "policy_version")
    resident = parse_resident_id(bundle["citizen"])
    facts = CitizenFacts(resident.value)
    read: list[tuple[Any, Record]] = []
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
        read.append((event["leaf"].get("position"), record))
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
    uses = bundle.get("uses", [])
    for number, use in enumerate(uses, start=1):
        _check_use(use, f"use {number}", signed, resident.value, read)
    return BundleCheck(len(bundle["events"]), signed.size, len(uses), logs)


def _check_use(
    use: dict[str, Any], where: str, signed: Any, resident: str, read: list[tuple[Any, Record]]
) -> None:
    """An inquiry's or decision's leaf is in the log; a decision replays from the
    bundle's records up to the position it read as its recorded outcome and score."""
    leaf = use["leaf"]
    data = orjson.dumps(leaf, option=orjson.OPT_SORT_KEYS)
    try:
        merkle.verify_inclusion(merkle.leaf_hash(data), use["index"], signed.size,
                                [bytes.fromhex(h) for h in use["proof"]], signed.root)  # fmt: skip
    except (merkle.ProofError, ValueError) as e:
        raise BundleError(f"{where} (position {leaf.get('position')}): {e}", "proof") from None
    kind = USE_OF_TOPIC.get(leaf.get("type")) if isinstance(leaf.get("type"), str) else None
    if kind is None:
        raise BundleError(f"{where}: {leaf.get('type')!r} is not a use of a file", "uses")
    if kind != DECISION:
        return
    payload = leaf.get("payload")
    try:
        if not isinstance(payload, dict):
            raise TypeError(payload)
        rule = decisions.load(str(payload["rule"]))
        upto, day = int(payload["position"]), date.fromisoformat(payload["as_of"])
    except (KeyError, TypeError, ValueError, LedgerError):
        raise BundleError(f"{where}: the payload is not a decision's", "uses") from None
    facts = fold(resident, [record for position, record in read if position <= upto])
    made = decisions.decide(rule, facts, contributions(facts, rule.policy), day)
    if (made.outcome, made.explanation.score.score) != (payload["outcome"], payload["score"]):
        raise BundleError(f"{where}: the decision replays as {made.outcome} at "
                          f"{made.explanation.score.score}, not {payload['outcome']} at "
                          f"{payload['score']}", "uses")  # fmt: skip


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
