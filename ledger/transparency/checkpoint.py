"""Signed checkpoints of the log: C2SP tlog-checkpoint bodies in C2SP signed notes.

A checkpoint body is three lines: the log's origin, the tree size in decimal, and
the root hash in base64. The note adds one signature line, an em dash, the key name,
and base64 of the 4-byte key id followed by the Ed25519 signature of the body. The
public key is kept as a note verifier key, `name+keyid+base64(0x01 || key)`.
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from ledger.errors import LedgerError

ED25519 = 0x01
DEFAULT_KEY = "ledger.key"
DEFAULT_ORIGIN = "social-credit-ledger.local/log"
DASH = "\u2014"


class CheckpointError(LedgerError):
    """A key or checkpoint cannot be used, or a signature does not hold."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes

    def body(self) -> str:
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n"


@dataclass(frozen=True, slots=True)
class Verifier:
    name: str
    public: bytes

    @property
    def key_id(self) -> bytes:
        return key_id(self.name, self.public)

    def vkey(self) -> str:
        encoded = base64.b64encode(bytes([ED25519]) + self.public).decode()
        return f"{self.name}+{self.key_id.hex()}+{encoded}"


def key_id(name: str, public: bytes) -> bytes:
    """The signed-note key id: the first 4 bytes of SHA-256(name || 0x0A || 0x01 || key)."""
    return hashlib.sha256(name.encode() + b"\n" + bytes([ED25519]) + public).digest()[:4]


def key_path(option: str | None) -> Path:
    """`--key`, else LEDGER_SIGNING_KEY, else ./ledger.key."""
    return Path(option or os.environ.get("LEDGER_SIGNING_KEY") or DEFAULT_KEY)


def init_key(path: Path, origin: str = DEFAULT_ORIGIN) -> Verifier:
    """Create a new signing key (mode 0600) and its public key at PATH.pub (mode 0644)."""
    public_path = Path(f"{path}.pub")
    if not origin or any(c.isspace() for c in origin) or "+" in origin:
        raise CheckpointError("must be a name without spaces or '+'", "origin")
    if not path.parent.is_dir():
        raise CheckpointError(f"{path.parent} is not a folder; create it first", "key")
    for existing in (path, public_path):
        if existing.exists() or existing.is_symlink():
            raise CheckpointError(f"{existing} exists; a key is never overwritten", "key")
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    verifier = Verifier(origin, _raw_public(private.public_key()))
    _create(path, 0o600, f"# origin {origin}\n".encode() + pem)
    try:
        _create(public_path, 0o644, f"{verifier.vkey()}\n".encode())
    except CheckpointError:
        path.unlink()
        raise
    return verifier


def _create(path: Path, mode: int, data: bytes) -> None:
    """Write a new file with exactly `mode`, whatever the umask; never replace one."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    except FileExistsError:
        raise CheckpointError(f"{path} exists; a key is never overwritten", "key") from None
    except OSError as e:
        raise CheckpointError(f"cannot create {path}: {e.strerror}", "key") from None
    with os.fdopen(descriptor, "wb") as out:
        os.fchmod(out.fileno(), mode)
        out.write(data)


def load_signer(path: Path) -> tuple[Ed25519PrivateKey, Verifier]:
    try:
        text = path.read_bytes()
    except OSError as e:
        raise CheckpointError(f"cannot read {path}: {e.strerror}", "key") from None
    first, _, pem = text.partition(b"\n")
    if not first.startswith(b"# origin "):
        raise CheckpointError(f"{path} is not a key made by `ledger keys init`", "key")
    try:
        private = serialization.load_pem_private_key(pem, password=None)
    except ValueError:
        raise CheckpointError(f"{path} does not hold a readable private key", "key") from None
    if not isinstance(private, Ed25519PrivateKey):
        raise CheckpointError(f"{path} is not an Ed25519 key", "key")
    origin = first.removeprefix(b"# origin ").decode().strip()
    return private, Verifier(origin, _raw_public(private.public_key()))


def load_verifier(text_or_path: str) -> Verifier:
    """A verifier key from its text or from a file holding it."""
    text = text_or_path
    path = Path(text_or_path)
    if "+" not in text_or_path or path.is_file():
        try:
            text = path.read_text(encoding="utf-8").strip()
        except OSError as e:
            raise CheckpointError(f"cannot read {path}: {e.strerror}", "public_key") from None
    try:
        name, hex_id, encoded = text.split("+", 2)
        raw = base64.b64decode(encoded, validate=True)
    except ValueError:
        raise CheckpointError("is not a note verifier key name+id+key", "public_key") from None
    if len(raw) != 33 or raw[0] != ED25519:
        raise CheckpointError("is not an Ed25519 verifier key", "public_key")
    verifier = Verifier(name, raw[1:])
    if verifier.key_id.hex() != hex_id:
        raise CheckpointError("its key id does not match the key", "public_key")
    return verifier


def sign(checkpoint: Checkpoint, private: Ed25519PrivateKey, verifier: Verifier) -> str:
    """The signed note of a checkpoint."""
    body = checkpoint.body()
    signature = private.sign(body.encode())
    line = base64.b64encode(verifier.key_id + signature).decode()
    return f"{body}\n{DASH} {verifier.name} {line}\n"


def open_note(note: str, verifier: Verifier) -> Checkpoint:
    """The checkpoint a note signs, if the verifier's signature on it holds."""
    body, separator, signatures = note.partition("\n\n")
    if not separator:
        raise CheckpointError("the note has no signature lines", "checkpoint")
    body += "\n"
    lines = body.split("\n")
    if len(lines) < 4:
        raise CheckpointError("the body needs an origin, a size and a root", "checkpoint")
    origin, size_text, root_text = lines[0], lines[1], lines[2]
    try:
        size = int(size_text)
        root = base64.b64decode(root_text, validate=True)
    except ValueError:
        raise CheckpointError("the size or root hash is malformed", "checkpoint") from None
    if origin != verifier.name:
        raise CheckpointError(f"origin {origin!r} is not {verifier.name!r}", "checkpoint")
    public = Ed25519PublicKey.from_public_bytes(verifier.public)
    for line in signatures.splitlines():
        parts = line.split(" ")
        if len(parts) != 3 or parts[0] != DASH or parts[1] != verifier.name:
            continue
        try:
            raw = base64.b64decode(parts[2], validate=True)
        except ValueError:
            continue
        if raw[:4] != verifier.key_id:
            continue
        try:
            public.verify(raw[4:], body.encode())
        except InvalidSignature:
            raise CheckpointError("the signature does not hold", "checkpoint") from None
        return Checkpoint(origin, size, root)
    raise CheckpointError(f"no signature by {verifier.name}", "checkpoint")


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
