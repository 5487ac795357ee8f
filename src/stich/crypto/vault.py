"""The secrets vault: AES-256-GCM under a key ring, each ciphertext bound to its row.

Stored format, version 1 (one ``bytes`` value, the ``user_secrets.ciphertext`` column)::

    0x01 | len(key id) (1 byte) | key id (ASCII) | nonce (12 bytes) | ciphertext || tag (16)

The header (version and key id) says which ring key decrypts it, so a ring can hold old
keys while rows are re-encrypted under the new one (see ``stich secrets rotate-key``).

The associated data authenticates, without encrypting, what the ciphertext belongs to:
the header, the secret's id, its owner's id and its provider. A ciphertext copied onto
another row or another user's row therefore fails its tag check instead of decrypting to
someone else's key. Every field is length-prefixed, so no two bindings share an encoding.

There is no envelope (per-secret data key wrapped by the ring key): values are small
(a provider API key), the ring lives in process memory rather than in a remote KMS, and a
random 96-bit nonce per encryption keeps a single key far below GCM's usage limits for any
plausible number of secrets. An envelope would add a second encryption and a second
failure mode for no gain here; format version 2 can introduce one if keys move into a KMS.
"""

from __future__ import annotations

import base64
import os
import secrets
import struct
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import structlog
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from stich.config import VAULT_KEY_BYTES, Environment, Settings, parse_key_ring
from stich.errors import Conflict, StichError, Unavailable

FORMAT_V1 = 1
NONCE_BYTES = 12
TAG_BYTES = 16
_AD_CONTEXT = b"stich.user_secret"


class VaultNotConfigured(Unavailable):
    """No key ring: secrets cannot be stored or read (production without STICH_SECRETS_KEYS)."""

    default_code = "vault_not_configured"


class DecryptionError(StichError):
    """A stored ciphertext could not be decrypted. Messages name ids and key ids, never values."""

    reason = "undecryptable"


class SecretUnreadable(DecryptionError, Conflict):
    """The ciphertext fails its integrity check: tampered, truncated or copied from another row."""

    default_code = "secret_unreadable"
    reason = "integrity"


class KeyNotInRing(DecryptionError, Unavailable):
    """The ciphertext names a key the ring does not hold (removed before rotation finished)."""

    default_code = "vault_key_missing"
    reason = "unknown_key"


@dataclass(frozen=True)
class SecretBinding:
    """What a ciphertext belongs to; any change makes decryption fail."""

    secret_id: str
    user_id: str
    provider: str

    def associated_data(self, header: bytes) -> bytes:
        fields = (_AD_CONTEXT, header, *(f.encode() for f in self._fields()))
        return b"".join(struct.pack(">I", len(part)) + part for part in fields)

    def _fields(self) -> tuple[str, str, str]:
        return (self.secret_id, self.user_id, self.provider)


@dataclass(frozen=True)
class Envelope:
    """A parsed stored ciphertext (no secret in it; the sealed part needs the key)."""

    version: int
    key_id: str
    nonce: bytes = field(repr=False)
    sealed: bytes = field(repr=False)

    @property
    def header(self) -> bytes:
        key_id = self.key_id.encode()
        return bytes([self.version, len(key_id)]) + key_id

    def to_bytes(self) -> bytes:
        return self.header + self.nonce + self.sealed

    @classmethod
    def parse(cls, blob: bytes, *, secret_id: str) -> Envelope:
        """Split a stored value; anything that is not a version-1 envelope is unreadable."""
        if len(blob) < 2 or blob[0] != FORMAT_V1:
            raise _unreadable(secret_id)
        key_id_end = 2 + blob[1]
        if len(blob) < key_id_end + NONCE_BYTES + TAG_BYTES:
            raise _unreadable(secret_id)
        try:
            key_id = blob[2:key_id_end].decode("ascii")
        except UnicodeDecodeError:
            raise _unreadable(secret_id) from None
        nonce_end = key_id_end + NONCE_BYTES
        return cls(FORMAT_V1, key_id, blob[key_id_end:nonce_end], blob[nonce_end:])


def _unreadable(secret_id: str) -> SecretUnreadable:
    return SecretUnreadable(
        f"secret {secret_id} cannot be decrypted: its stored value fails the integrity "
        "check (it was altered or belongs to another record); replace or delete it",
        details={"secret_id": secret_id},
    )


def _key_missing(secret_id: str, key_id: str) -> KeyNotInRing:
    return KeyNotInRing(
        f"secret {secret_id} is encrypted under key {key_id!r}, which is not in "
        "STICH_SECRETS_KEYS; put that key back in the ring (after the active one)",
        details={"secret_id": secret_id, "key_id": key_id},
    )


class Vault:
    """Encrypts under the ring's first key; decrypts under whichever key a value names."""

    def __init__(self, ring: Mapping[str, bytes]) -> None:
        for key_id, key in ring.items():
            if len(key) != VAULT_KEY_BYTES:
                raise ValueError(f"vault key {key_id!r} must be {VAULT_KEY_BYTES} bytes")
            if not 0 < len(key_id.encode("ascii")) <= 255:
                raise ValueError("vault key ids must be 1-255 ASCII characters")
        self._ciphers = {key_id: AESGCM(key) for key_id, key in ring.items()}
        self._active = next(iter(ring), None)

    @classmethod
    def from_settings(cls, settings: Settings) -> Vault:
        return cls(load_key_ring(settings))

    @property
    def configured(self) -> bool:
        return self._active is not None

    @property
    def active_key_id(self) -> str:
        if self._active is None:
            raise VaultNotConfigured(
                "the secrets vault has no keys: set STICH_SECRETS_KEYS "
                "(generate one with `stich secrets generate-key`)"
            )
        return self._active

    @property
    def key_ids(self) -> list[str]:
        return list(self._ciphers)

    def encrypt(self, plaintext: str, binding: SecretBinding) -> bytes:
        key_id = self.active_key_id
        nonce = os.urandom(NONCE_BYTES)
        header = Envelope(FORMAT_V1, key_id, nonce, b"").header
        try:
            data = plaintext.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("a secret value must be valid Unicode text") from None
        sealed = self._ciphers[key_id].encrypt(nonce, data, binding.associated_data(header))
        return Envelope(FORMAT_V1, key_id, nonce, sealed).to_bytes()

    def decrypt(self, blob: bytes, binding: SecretBinding) -> str:
        """The plaintext, or SecretUnreadable / KeyNotInRing (never a value in the message)."""
        envelope = Envelope.parse(blob, secret_id=binding.secret_id)
        cipher = self._ciphers.get(envelope.key_id)
        if cipher is None:
            if not self.configured:
                self.active_key_id  # noqa: B018 (raises VaultNotConfigured)
            raise _key_missing(binding.secret_id, envelope.key_id)
        try:
            plaintext = cipher.decrypt(
                envelope.nonce, envelope.sealed, binding.associated_data(envelope.header)
            )
            return plaintext.decode("utf-8")
        except (InvalidTag, UnicodeDecodeError):
            raise _unreadable(binding.secret_id) from None

    def needs_rotation(self, key_id: str | None) -> bool:
        return key_id != self.active_key_id

    def __repr__(self) -> str:
        return f"Vault(active={self._active!r}, keys={self.key_ids!r})"


def generate_key_entry(key_id: str | None = None) -> str:
    """A new ring entry ``kid:base64key`` (256 random bits) for STICH_SECRETS_KEYS."""
    if key_id is None:
        key_id = f"k{datetime.now(UTC):%Y%m%d}_{secrets.token_hex(3)}"
    entry = f"{key_id}:{base64.b64encode(secrets.token_bytes(VAULT_KEY_BYTES)).decode()}"
    parse_key_ring(entry)  # the same validation start-up applies
    return entry


def load_key_ring(settings: Settings) -> dict[str, bytes]:
    """STICH_SECRETS_KEYS; outside production without it, a ring generated into a local file.

    In production a missing ring is not invented: the vault reports itself unconfigured
    (HTTP 503 on secret operations) rather than encrypting under a key nobody backs up.
    """
    ring = settings.key_ring()
    if ring or settings.env is Environment.PRODUCTION:
        return ring
    return parse_key_ring(_load_or_create_local_ring(settings.secrets_keys_path()))


def _load_or_create_local_ring(path: Path) -> str:
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    entry = generate_key_entry("local1")
    # Write a private temporary file, then link it into place: the link fails if another
    # process got there first, and nobody ever reads a half-written ring.
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".secrets-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(entry + "\n")
        os.link(temporary, path)
    except FileExistsError:
        return path.read_text().strip()
    finally:
        os.unlink(temporary)
    structlog.get_logger("stich.vault").warning(
        "generated a local secrets key ring; back it up, and set STICH_SECRETS_KEYS in production",
        path=str(path),
    )
    return entry
