"""Signed checkpoints: C2SP tlog-checkpoint bodies in signed notes, Ed25519 keys."""

from __future__ import annotations

import base64
import hashlib
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ledger.transparency.checkpoint import (
    Checkpoint,
    CheckpointError,
    init_key,
    load_signer,
    load_verifier,
    open_note,
    sign,
)

ROOT = hashlib.sha256(b"root").digest()


@pytest.fixture
def key(tmp_path: Path) -> Path:
    init_key(tmp_path / "ledger.key", "example.org/log")
    return tmp_path / "ledger.key"


def test_init_writes_a_private_key_only_its_owner_reads_and_the_public_key_beside_it(
    key: Path,
) -> None:
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    vkey = Path(f"{key}.pub").read_text().strip()
    name, key_id, encoded = vkey.split("+", 2)
    raw = base64.b64decode(encoded)
    assert name == "example.org/log"
    assert raw[0] == 1
    assert len(raw) == 33
    expected_id = hashlib.sha256(b"example.org/log\n\x01" + raw[1:]).digest()[:4]
    assert key_id == expected_id.hex()


def test_init_never_overwrites_a_key(key: Path) -> None:
    before = key.read_bytes()
    with pytest.raises(CheckpointError, match="never overwritten"):
        init_key(key)
    assert key.read_bytes() == before


def test_a_signed_note_has_the_checkpoint_body_and_one_signature_line(key: Path) -> None:
    private, verifier = load_signer(key)
    note = sign(Checkpoint("example.org/log", 42, ROOT), private, verifier)
    body, signature = note.split("\n\n")
    assert body == f"example.org/log\n42\n{base64.b64encode(ROOT).decode()}"
    dash, name, encoded = signature.rstrip("\n").split(" ")
    assert (dash, name) == ("\u2014", "example.org/log")
    assert base64.b64decode(encoded)[:4] == verifier.key_id
    assert open_note(note, load_verifier(f"{key}.pub")) == Checkpoint("example.org/log", 42, ROOT)


def test_a_changed_body_fails_the_signature(key: Path) -> None:
    private, verifier = load_signer(key)
    note = sign(Checkpoint("example.org/log", 42, ROOT), private, verifier)
    with pytest.raises(CheckpointError, match="signature does not hold"):
        open_note(note.replace("\n42\n", "\n43\n"), verifier)


def test_another_key_finds_no_signature_of_its_own(key: Path, tmp_path: Path) -> None:
    private, verifier = load_signer(key)
    note = sign(Checkpoint("example.org/log", 1, ROOT), private, verifier)
    other = init_key(tmp_path / "other.key", "example.org/log")
    with pytest.raises(CheckpointError, match="no signature by"):
        open_note(note, other)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name+00000000+AAAA", "not an Ed25519 verifier key"),
        ("no-plus-signs-at-all", "cannot read"),
        ("name+deadbeef+" + base64.b64encode(b"\x01" + bytes(32)).decode(), "key id does not"),
    ],
)
def test_bad_verifier_keys_are_named(text: str, message: str) -> None:
    with pytest.raises(CheckpointError, match=message):
        load_verifier(text)


# Making a key: never over anything, with modes that do not follow the umask


@pytest.fixture
def umask() -> Iterator[Callable[[int], None]]:
    before = os.umask(0o022)
    yield os.umask
    os.umask(before)


@pytest.mark.parametrize("mask", [0o000, 0o022, 0o077, 0o177])
def test_init_when_any_umask_then_key_0600_and_public_key_0644(
    tmp_path: Path, umask: Callable[[int], None], mask: int
) -> None:
    umask(mask)
    init_key(tmp_path / "ledger.key")
    assert stat.S_IMODE((tmp_path / "ledger.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "ledger.key.pub").stat().st_mode) == 0o644


def test_init_when_the_public_key_exists_then_refused_and_nothing_written(tmp_path: Path) -> None:
    public = tmp_path / "ledger.key.pub"
    public.write_text("someone's key\n")
    with pytest.raises(CheckpointError, match=r"ledger\.key\.pub exists; a key is never "):
        init_key(tmp_path / "ledger.key")
    assert public.read_text() == "someone's key\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ledger.key.pub"]


def test_init_when_the_public_key_is_a_dangling_link_then_refused(tmp_path: Path) -> None:
    (tmp_path / "ledger.key.pub").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(CheckpointError, match="never overwritten"):
        init_key(tmp_path / "ledger.key")
    assert not (tmp_path / "elsewhere").exists()
    assert not (tmp_path / "ledger.key").exists()


def test_init_when_the_folder_is_missing_then_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError) as caught:
        init_key(tmp_path / "missing" / "ledger.key")
    assert str(caught.value) == f"key: {tmp_path / 'missing'} is not a folder; create it first"
    assert list(tmp_path.iterdir()) == []
