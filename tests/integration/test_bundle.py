"""Audit bundles made by `ledger audit` verify offline, and fail once anything changes."""

from __future__ import annotations

import base64
import copy
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from ledger.application import FixedClock, Ledger
from ledger.domain import Decided
from ledger.domain.identity import citizen_id
from ledger.transparency import merkle
from ledger.transparency.checkpoint import Checkpoint, load_signer, load_verifier, sign
from projections.bundle import BundleError, verify_bundle
from projections.decisions.requests import request_decision
from scripts.cli import main
from tests.builders import (
    LI_WEI,
    WANG_FANG,
    append,
    enrolled,
    fine,
    record,
    register_authorities,
    target,
)


def invoke(clock: FixedClock, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), obj={"clock": clock}, env=env)
    return result.exit_code, result.output


@pytest.fixture
def bundle(ledger: Ledger, store_url: str, clock: FixedClock, tmp_path: Path) -> dict[str, Any]:
    register_authorities(ledger)
    append(ledger, enrolled(WANG_FANG), enrolled(LI_WEI))
    append(ledger, record("infraction.recorded", "J-1", kind="judgment_default",
                          amount="900.00", occurred_on="2024-05-01"))  # fmt: skip
    append(ledger, fine("TP-1", occurred_on="2025-06-01"), fine("TP-LI", citizen=LI_WEI))
    append(ledger, record("infraction.settled", "TP-2", target=target("traffic-police", "TP-1"),
                          amount="200.00", occurred_on="2025-07-01"),
           record("record.disputed", "D-1", target=target("peoples-court", "J-1"),
                  reason="paid in full", occurred_on="2025-08-01"))  # fmt: skip
    key = str(tmp_path / "ledger.key")
    assert invoke(clock, "keys", "init", "--key", key)[0] == 0
    code, out = invoke(clock, "checkpoint", "--key", key, "--db", store_url)
    assert code == 0, out
    path = tmp_path / "bundle.json"
    code, out = invoke(clock, "audit", WANG_FANG, "--as-of", "2025-08-15", "--bundle", str(path),
                       "--db", store_url)  # fmt: skip
    assert code == 0, out
    assert "bundle written" in out
    return {"data": json.loads(path.read_text()), "folder": tmp_path, "key": f"{key}.pub"}


def _check(clock: FixedClock, bundle: dict[str, Any], data: dict[str, Any]) -> tuple[int, str]:
    path = bundle["folder"] / "changed.json"
    path.write_text(json.dumps(data))
    return invoke(clock, "verify-bundle", str(path), "--public-key", bundle["key"])


def test_a_bundle_verifies_offline(bundle: dict[str, Any], clock: FixedClock) -> None:
    data = bundle["data"]
    assert [e["leaf"]["payload"]["reference"] for e in data["events"]] == [
        f"E-{WANG_FANG}", "J-1", "TP-1", "TP-2", "D-1"
    ]  # fmt: skip
    assert data["score"] == {"score": 1000 - 100, "band": "B"}
    code, out = _check(clock, bundle, data)
    assert code == 0, out
    assert "the bundle holds: 5 events" in out


def _payload(data: dict[str, Any]) -> None:
    data["events"][2]["leaf"]["payload"]["amount"] = "20.00"


def _position(data: dict[str, Any]) -> None:
    data["events"][1]["leaf"]["position"] += 1


def _proof(data: dict[str, Any]) -> None:
    proof = data["events"][3]["proof"]
    proof[0] = ("0" if proof[0][0] != "0" else "1") + proof[0][1:]


def _index(data: dict[str, Any]) -> None:
    data["events"][0]["index"] += 1


def _signature(data: dict[str, Any]) -> None:
    body, signature = data["checkpoint"].split("\n\n")
    dash, name, encoded = signature.strip().split(" ")
    raw = bytearray(base64.b64decode(encoded))
    raw[-1] ^= 1
    data["checkpoint"] = f"{body}\n\n{dash} {name} {base64.b64encode(bytes(raw)).decode()}\n"


def _size(data: dict[str, Any]) -> None:
    lines = data["checkpoint"].split("\n")
    lines[1] = str(int(lines[1]) + 1)
    data["checkpoint"] = "\n".join(lines)


def _score(data: dict[str, Any]) -> None:
    data["events"][2]["score"]["score"] -= 5


def _final_score(data: dict[str, Any]) -> None:
    data["score"]["band"] = "A"


def _explanation(data: dict[str, Any]) -> None:
    data["explanation"]["reasons"][0]["points"] = -1


def _dropped_event(data: dict[str, Any]) -> None:
    del data["events"][3]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_payload, "event 3"), (_position, "event 2"), (_proof, "event 4"), (_index, "event 1"),
        (_signature, "signature"), (_size, "signature"), (_score, "event 3"),
        (_final_score, "score"), (_explanation, "explanation"), (_dropped_event, "event 4"),
    ],
)  # fmt: skip
def test_a_bundle_fails_once_anything_in_it_changes(
    bundle: dict[str, Any], clock: FixedClock, change: Callable[[dict[str, Any]], None],
    message: str,
) -> None:  # fmt: skip
    data = copy.deepcopy(bundle["data"])
    change(data)
    code, out = _check(clock, bundle, data)
    assert code == 1, out
    assert "the bundle does not hold" in out
    assert message in out


def test_a_bundle_needs_a_checkpoint(ledger: Ledger, store_url: str, clock: FixedClock,
                                     tmp_path: Path) -> None:  # fmt: skip
    register_authorities(ledger)
    append(ledger, enrolled(WANG_FANG))
    code, out = invoke(clock, "audit", WANG_FANG, "--bundle", str(tmp_path / "b.json"),
                       "--db", store_url)  # fmt: skip
    assert code != 0
    assert "no checkpoint yet" in out


def _signed_over_its_leaves(bundle: dict[str, Any], data: dict[str, Any]) -> None:
    """Sign a checkpoint over exactly the bundle's leaves, so every proof holds."""
    private, verifier = load_signer(Path(bundle["key"].removesuffix(".pub")))
    hashes = [merkle.leaf_hash(orjson.dumps(e["leaf"], option=orjson.OPT_SORT_KEYS))
              for e in data["events"]]  # fmt: skip
    for index, event in enumerate(data["events"]):
        event["index"] = index
        event["proof"] = [h.hex() for h in merkle.inclusion_proof(hashes, index)]
    root = merkle.root_from_hashes(hashes)
    data["checkpoint"] = sign(Checkpoint(verifier.name, len(hashes), root), private, verifier)


@pytest.mark.parametrize("topic", ["tests_evil_bundle_topic:Boom", "os:system"])
def test_a_bundle_naming_another_module_is_refused_without_importing_it(
    bundle: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, topic: str
) -> None:
    # A module that would leave a mark if anything imported it.
    mark = tmp_path / "imported"
    (tmp_path / "tests_evil_bundle_topic.py").write_text(
        f"import pathlib\npathlib.Path({str(mark)!r}).write_text('boom')\nBoom = object\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    verifier = load_verifier(bundle["key"])
    honest = copy.deepcopy(bundle["data"])
    _signed_over_its_leaves(bundle, honest)
    assert verify_bundle(honest, verifier).events == 5  # the construction alone is sound
    data = copy.deepcopy(bundle["data"])
    data["events"][1]["leaf"]["type"] = topic
    _signed_over_its_leaves(bundle, data)
    position = data["events"][1]["leaf"]["position"]
    with pytest.raises(BundleError, match=f"position {position}: '{topic}' is not a type"):
        verify_bundle(data, verifier)
    assert "tests_evil_bundle_topic" not in sys.modules
    assert not mark.exists()


def _decided_bundle(
    ledger: Ledger, store_url: str, clock: FixedClock, tmp_path: Path, outcome: str | None
) -> dict[str, Any]:
    """Wang Fang with a judgment default, and a bank's mortgage decision about her: made
    by the rule, or (with `outcome`) recorded with that outcome instead."""
    register_authorities(ledger)
    append(ledger, enrolled(WANG_FANG), record("infraction.recorded", "J-1",
           kind="judgment_default", amount="900.00", occurred_on="2024-05-01"))  # fmt: skip
    ledger.register_party("bank-a", "Bank A", ["mortgage"])
    if outcome is None:
        request_decision(ledger, "bank-a", "mortgage", WANG_FANG)
    else:
        ledger.record_use(citizen_id(WANG_FANG), lambda file: (None, (Decided, {
            "party": "bank-a", "purpose": "mortgage", "as_of": ledger.today(),
            "position": file.records[-1].position, "rule": "mortgage-v1", "outcome": outcome,
            "score": 550, "request": None})))  # fmt: skip
    key = str(tmp_path / "ledger.key")
    assert invoke(clock, "keys", "init", "--key", key)[0] == 0
    assert invoke(clock, "checkpoint", "--key", key, "--db", store_url)[0] == 0
    path = tmp_path / "bundle.json"
    code, out = invoke(clock, "audit", WANG_FANG, "--bundle", str(path), "--db", store_url)
    assert code == 0, out
    return {"data": json.loads(path.read_text()), "folder": tmp_path, "key": f"{key}.pub"}


def test_a_bundle_holds_the_decisions_and_replays_them(
    ledger: Ledger, store_url: str, clock: FixedClock, tmp_path: Path
) -> None:
    made = _decided_bundle(ledger, store_url, clock, tmp_path, None)
    (use,) = made["data"]["uses"]
    assert (use["leaf"]["payload"]["outcome"], use["leaf"]["payload"]["rule"]) == (
        "deny", "mortgage-v1")  # fmt: skip
    code, out = _check(clock, made, made["data"])
    assert code == 0, out
    assert "1 inquiry or decision" in out
    changed = copy.deepcopy(made["data"])
    changed["uses"][0]["leaf"]["payload"]["outcome"] = "approve"
    code, out = _check(clock, made, changed)
    assert (code, "use 1 (position" in out) == (1, True), out


def test_a_decision_logged_against_its_rule_fails_the_bundle(
    ledger: Ledger, store_url: str, clock: FixedClock, tmp_path: Path
) -> None:
    made = _decided_bundle(ledger, store_url, clock, tmp_path, "approve")
    code, out = _check(clock, made, made["data"])
    assert code == 1, out
    assert "use 1: the decision replays as deny at 550, not approve at 550" in out
