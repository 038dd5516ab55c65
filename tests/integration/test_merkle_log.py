"""The log's Merkle tree on both stores: kept up to date, proofs, and tampering found."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from ledger.application import Ledger
from ledger.log import UnreadableLog
from ledger.storage import PostgresLedgerRecorder
from ledger.transparency import merkle
from ledger.transparency.audit import Log, ProofRequestError, verify_log
from ledger.transparency.tree import FIRST_STORED, leaf_data, new_nodes
from tests.behind import behind_the_back
from tests.builders import LI_WEI, WANG_FANG, append, enrolled, fine, register_authorities


@pytest.fixture
def filled(ledger: Ledger) -> Ledger:
    register_authorities(ledger)
    append(ledger, enrolled(WANG_FANG), enrolled(LI_WEI))
    for n in range(1, 8):
        append(ledger, *(fine(f"TP-{n}-{k}", amount=f"{k}.00") for k in range(1, n + 1)))
    return ledger


def _leaves(ledger: Ledger) -> list[tuple[int, bytes]]:
    notes = ledger.recorder.select_notifications(start=1, limit=10_000)
    return [
        (n.id, merkle.leaf_hash(leaf_data(n.id, n.originator_id, n.originator_version, n.topic,
                                          n.state)))
        for n in notes
    ]  # fmt: skip


def test_the_stored_tree_matches_the_log_at_every_size(filled: Ledger) -> None:
    leaves = _leaves(filled)
    log = Log(filled)
    assert log.size() == len(leaves) == filled.max_position()
    hashes = [h for _, h in leaves]
    for size in range(1, len(leaves) + 1):
        assert log.root(size) == merkle.root_from_hashes(hashes[:size])


def test_inclusion_and_consistency_proofs_verify(filled: Ledger) -> None:
    log = Log(filled)
    size = log.size()
    root = log.root()
    for position, leaf in _leaves(filled):
        proof = log.inclusion(position)
        assert proof.leaf_hash == leaf
        merkle.verify_inclusion(leaf, proof.index, proof.size, proof.proof, root)
        older = log.inclusion(position, size=proof.index + 1)
        merkle.verify_inclusion(leaf, older.index, older.size, older.proof, older.root)
    for old in range(1, size + 1):
        consistency = log.consistency(old)
        merkle.verify_consistency(old, size, consistency.proof, consistency.root1, root)


def test_proofs_for_positions_and_sizes_the_log_lacks_are_refused(filled: Ledger) -> None:
    log = Log(filled)
    with pytest.raises(ProofRequestError, match="no event at position 999"):
        log.inclusion(999)
    with pytest.raises(ProofRequestError, match="not 999"):
        log.consistency(1, 999)
    with pytest.raises(ProofRequestError, match="not in a tree of 3"):
        log.inclusion(10, size=3)


def test_an_untouched_ledger_verifies(filled: Ledger) -> None:
    assert verify_log(filled) is None


def _flip_a_byte(run: Callable[..., Any], position: int) -> None:
    state = bytes(run("SELECT state FROM EVENTS WHERE POS = %s", [position])[0][0])
    index = state.index(b"200") if b"200" in state else len(state) // 2
    changed = state[:index] + bytes([state[index] ^ 1]) + state[index + 1 :]
    run("UPDATE EVENTS SET state = %s WHERE POS = %s", [changed, position])


def test_changing_one_byte_of_a_payload_is_found_at_its_position(
    filled: Ledger, store_url: str
) -> None:
    with behind_the_back(store_url) as run:
        _flip_a_byte(run, 15)
    damage = verify_log(filled)
    assert damage is not None
    assert (damage.position, damage.kind) == (15, "altered")


def test_an_event_altered_into_json_that_is_not_an_object_is_found_at_its_position(
    filled: Ledger, store_url: str
) -> None:
    with behind_the_back(store_url) as run:
        run("UPDATE EVENTS SET state = %s WHERE POS = %s", [b"[1, 2]", 15])
    damage = verify_log(filled)
    assert damage is not None
    assert (damage.position, damage.kind) == (15, "altered")


def test_damage_is_found_the_same_when_the_log_is_read_in_small_batches(
    filled: Ledger, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Batches of events and of stored nodes that never line up with each other.
    for module in ("ledger.storage.postgres.reads", "ledger.storage.sqlite"):
        monkeypatch.setattr(f"{module}.FIRST_ROWS", 2)
        monkeypatch.setattr(f"{module}.STREAM_ROWS", 4)
        monkeypatch.setattr(f"{module}.TREE_ROWS", 3)
    assert verify_log(filled) is None
    with behind_the_back(store_url) as run:
        run("UPDATE NODES SET hash = %s WHERE level = 4 AND idx = 1", [bytes(32)])
    damage = verify_log(filled)
    assert damage is not None
    assert (damage.position, damage.kind) == (Log(filled).store.tree_position(16), "tree altered")
    with behind_the_back(store_url) as run:
        run("DELETE FROM EVENTS WHERE POS = %s", [23])
    damage = verify_log(filled)
    assert damage is not None
    assert (damage.position, damage.kind) == (23, "deleted")


def test_deleting_an_event_is_found_at_its_position(filled: Ledger, store_url: str) -> None:
    with behind_the_back(store_url) as run:
        run("DELETE FROM EVENTS WHERE POS = %s", [20])
    damage = verify_log(filled)
    assert damage is not None
    assert (damage.position, damage.kind) == (20, "deleted")


def test_inserting_a_forged_event_is_found_at_its_position(filled: Ledger, store_url: str) -> None:
    last = filled.max_position()
    with behind_the_back(store_url) as run:
        row = run(
            "SELECT originator_id, originator_version, topic, state FROM EVENTS WHERE POS = %s",
            [last],
        )[0]
        run(
            "INSERT INTO EVENTS (originator_id, originator_version, topic, state) "
            "VALUES (%s, %s, %s, %s)",
            [row[0], row[1] + 1, row[2], row[3]],
        )
    damage = verify_log(filled)
    assert damage is not None
    assert (damage.position, damage.kind) == (last + 1, "inserted")


def test_swapping_two_events_is_found_at_the_first(filled: Ledger, store_url: str) -> None:
    with behind_the_back(store_url) as run:
        a = run("SELECT state FROM EVENTS WHERE POS = %s", [12])[0][0]
        b = run("SELECT state FROM EVENTS WHERE POS = %s", [17])[0][0]
        run("UPDATE EVENTS SET state = %s WHERE POS = %s", [b, 12])
        run("UPDATE EVENTS SET state = %s WHERE POS = %s", [a, 17])
    damage = verify_log(filled)
    assert damage is not None
    assert (damage.position, damage.kind) == (12, "altered")


def test_altering_a_stored_inner_node_is_found(filled: Ledger, store_url: str) -> None:
    with behind_the_back(store_url) as run:
        run("UPDATE NODES SET hash = %s WHERE level = 4 AND idx = 1", [bytes(32)])
    damage = verify_log(filled)
    assert damage is not None
    assert damage.kind == "tree altered"
    assert damage.position == Log(filled).store.tree_position(16)


@pytest.mark.parametrize(("level", "first"), [(0, 4), (FIRST_STORED, 0)])
def test_stored_hashes_cut_elsewhere_are_found_though_the_level_joins_the_same(
    filled: Ledger, store_url: str, level: int, first: int
) -> None:
    # The whole level is compared first as one string: this must not pass it.
    with behind_the_back(store_url) as run:
        left, right = (bytes(run("SELECT hash FROM NODES WHERE level = %s AND idx = %s",
                                 [level, idx])[0][0]) for idx in (first, first + 1))  # fmt: skip
        run("UPDATE NODES SET hash = %s WHERE level = %s AND idx = %s", [left[:31], level, first])
        run("UPDATE NODES SET hash = %s WHERE level = %s AND idx = %s",
            [left[31:] + right, level, first + 1])  # fmt: skip
    damage = verify_log(filled)
    assert damage is not None
    position = Log(filled).store.tree_position(first << level)
    assert (damage.position, damage.kind) == (
        (position, "altered") if level == 0 else (position, "tree altered")
    )


def test_a_tree_read_out_of_order_is_compared_node_by_node(
    filled: Ledger, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Were the database to aggregate a level out of index order, the check of whole
    # levels would fail: the node by node one then decides, and finds nothing.
    from dataclasses import replace  # noqa: PLC0415

    recorder: Any = filled.recorder
    read = recorder.tree_levels

    def scrambled() -> list[Any]:
        return [replace(level, hashes=level.hashes[32:] + level.hashes[:32]) for level in read()]

    monkeypatch.setattr(recorder, "tree_levels", scrambled)
    assert verify_log(filled) is None
    with behind_the_back(store_url) as run:
        run("UPDATE NODES SET hash = %s WHERE level = 4 AND idx = 1", [bytes(32)])
    damage = verify_log(filled)
    assert damage is not None
    assert (damage.position, damage.kind) == (Log(filled).store.tree_position(16), "tree altered")


def test_only_leaves_and_inner_nodes_from_the_first_stored_level_up_are_kept(
    filled: Ledger, store_url: str
) -> None:
    size = Log(filled).size()
    with behind_the_back(store_url) as run:
        kept = {(int(level), int(count)) for level, count in
                run("SELECT level, count(*) FROM NODES GROUP BY level")}  # fmt: skip
    expected = {(0, size)} | {
        (level, size >> level) for level in range(FIRST_STORED, size.bit_length())
    }
    assert kept == expected


def test_a_tree_stored_whole_by_an_earlier_version_still_proves_grows_and_verifies(
    filled: Ledger, store_url: str
) -> None:
    """Ledgers written before the levels below FIRST_STORED were left out hold them:
    they are checked, never needed, and new appends go on beside them."""
    leaves = [leaf for _, leaf in _leaves(filled)]
    levels = [leaves]
    while len(levels[-1]) > 1:
        levels.append(merkle.parents(levels[-1]))
    with behind_the_back(store_url) as run:
        for level in range(1, FIRST_STORED):
            for idx, digest in enumerate(levels[level]):
                run("INSERT INTO NODES (level, idx, hash, position) VALUES (%s, %s, %s, NULL)",
                    [level, idx, digest])  # fmt: skip
    assert verify_log(filled) is None
    append(filled, *(fine(f"TP-9-{k}", amount=f"{k}.00") for k in range(1, 30)))
    test_the_stored_tree_matches_the_log_at_every_size(filled)
    test_inclusion_and_consistency_proofs_verify(filled)
    assert verify_log(filled) is None
    with behind_the_back(store_url) as run:
        run("UPDATE NODES SET hash = %s WHERE level = 1 AND idx = 9", [bytes(32)])
    damage = verify_log(filled)
    assert damage is not None
    assert (damage.position, damage.kind) == (Log(filled).store.tree_position(18), "tree altered")


@pytest.fixture
def signer(tmp_path: Any) -> tuple[Any, Any]:
    from ledger.transparency.checkpoint import init_key, load_signer  # noqa: PLC0415

    init_key(tmp_path / "ledger.key", "test.example/log")
    return load_signer(tmp_path / "ledger.key")


def _recompute_tree(run: Callable[..., Any]) -> None:
    """What a careful forger does: rebuild every stored node from the events as they are."""
    rows = run("SELECT POS, originator_id, originator_version, topic, state FROM EVENTS "
               "ORDER BY POS")  # fmt: skip
    leaves = [
        merkle.leaf_hash(leaf_data(int(p), _uuid(o), int(v), t, bytes(s) if not
                                   isinstance(s, str) else s.encode()))
        for p, o, v, t, s in rows
    ]  # fmt: skip
    run("DELETE FROM NODES")
    for (level, idx), digest in new_nodes(0, leaves, {}).items():
        run("INSERT INTO NODES (level, idx, hash, position) VALUES (%s, %s, %s, %s)",
            [level, idx, digest, int(rows[idx][0]) if level == 0 else None])  # fmt: skip


def _uuid(value: Any) -> Any:
    import uuid  # noqa: PLC0415

    return value if isinstance(value, uuid.UUID) else uuid.UUID(value)


def test_checkpoints_of_an_untouched_ledger_verify(filled: Ledger, signer: Any) -> None:
    from ledger.transparency.audit import checkpoint  # noqa: PLC0415

    private, verifier = signer
    first = checkpoint(filled, private, verifier)
    append(filled, fine("TP-LATE", amount="9.00"))
    checkpoint(filled, private, verifier)
    assert first.startswith(f"test.example/log\n{filled.max_position() - 1}\n")
    assert verify_log(filled, verifier) is None


def test_a_rewrite_with_the_tree_recomputed_is_exposed_by_the_checkpoints(
    filled: Ledger, store_url: str, signer: Any
) -> None:
    from ledger.transparency.audit import checkpoint  # noqa: PLC0415

    private, verifier = signer
    append(filled, fine("TP-A", amount="1.00"))
    checkpoint(filled, private, verifier)
    good = filled.max_position()
    append(filled, fine("TP-B", amount="2.00"))
    checkpoint(filled, private, verifier)
    with behind_the_back(store_url) as run:
        _flip_a_byte(run, good + 1)
        _recompute_tree(run)
    assert verify_log(filled) is None  # the tree alone now agrees with the events
    damage = verify_log(filled, verifier)
    assert damage is not None
    assert (damage.position, damage.kind) == (good + 1, "rewritten")


def test_a_forged_checkpoint_is_refused(filled: Ledger, store_url: str, signer: Any) -> None:
    from ledger.transparency.audit import checkpoint  # noqa: PLC0415

    private, verifier = signer
    checkpoint(filled, private, verifier)
    with behind_the_back(store_url) as run:
        table = "checkpoints" if store_url.startswith("sqlite") else "ledger_checkpoints"
        note = run(f"SELECT note FROM {table}")[0][0]
        lines = note.split("\n")
        lines[1] = str(int(lines[1]) - 1)
        run(f"UPDATE {table} SET note = %s", ["\n".join(lines)])
    damage = verify_log(filled, verifier)
    assert damage is not None
    assert damage.kind == "checkpoint forged"


def test_a_log_written_before_it_had_a_tree_gets_one_when_opened(
    filled: Ledger, store_url: str, open_ledger: Callable[[], Ledger]
) -> None:
    root = Log(filled).root()
    with behind_the_back(store_url) as run:
        run("DELETE FROM NODES")
    assert Log(filled).size() == 0
    reopened = open_ledger()
    assert Log(reopened).root() == root
    assert verify_log(reopened) is None


def test_a_writer_refuses_a_citizen_whose_stored_enrolment_names_someone_else(
    filled: Ledger, store_url: str
) -> None:
    """A writer loads a citizen from their stored events: Wang Fang's enrolment altered
    behind the ledger's back to name Li Wei stops an append for her, naming the
    citizen, and nothing is written."""
    head = filled.max_position()
    with behind_the_back(store_url) as sql:
        rows = sql("SELECT POS, state FROM EVENTS WHERE topic LIKE %s", ["%Enrolled"])
        position, state = next(row for row in rows if WANG_FANG.encode() in bytes(row[1]))
        altered = bytes(state).replace(WANG_FANG.encode(), LI_WEI.encode())
        sql("UPDATE EVENTS SET state = %s WHERE POS = %s", [altered, position])
    fresh = Ledger(store_url)
    try:
        with pytest.raises(UnreadableLog, match=f"enrolled as {LI_WEI}"):
            append(fresh, fine("TP-9-1", WANG_FANG))
        assert fresh.max_position() == head
    finally:
        fresh.close()


def test_a_writer_refuses_a_citizen_whose_stored_history_skips_a_version(
    filled: Ledger, store_url: str
) -> None:
    """An event deleted from the middle of Wang Fang's history behind the ledger's back
    stops an append for her, naming the gap, and nothing is written."""
    head = filled.max_position()
    with behind_the_back(store_url) as sql:
        rows = sql("SELECT POS, state FROM EVENTS WHERE topic LIKE %s", ["%InfractionRecorded"])
        position = next(row[0] for row in rows if b"TP-3-1" in bytes(row[1]))
        sql("DELETE FROM EVENTS WHERE POS = %s", [position])
    fresh = Ledger(store_url)
    try:
        with pytest.raises(UnreadableLog, match="follows event"):
            append(fresh, fine("TP-9-1", WANG_FANG))
        assert fresh.max_position() == head
    finally:
        fresh.close()


@pytest.mark.postgres
def test_a_ledger_opened_while_the_first_events_are_saved_grows_no_second_tree(
    postgres_schema_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ledger opened on an empty log grows a tree over events saved before the tree
    existed. If another process saves the first events (and their tree) between its
    look at the tree and its lock, it must not grow them a second one."""
    first = Ledger(postgres_schema_url)
    locking = PostgresLedgerRecorder._lock_table
    saved: list[int] = []

    def meanwhile(self: PostgresLedgerRecorder, curs: Any) -> None:
        if not saved:
            saved.append(1)
            register_authorities(first)  # saves events and grows the tree, then commits
        locking(self, curs)

    monkeypatch.setattr(PostgresLedgerRecorder, "_lock_table", meanwhile)
    try:
        second = Ledger(postgres_schema_url)
        try:
            assert saved
            assert verify_log(second) is None
            assert Log(second).size() == second.max_position() > 0
        finally:
            second.close()
    finally:
        first.close()
