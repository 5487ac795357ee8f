"""The original's secret values: ``base64(iv[12] || ciphertext || tag[16])`` under one
AES-256-GCM key (base64), no associated data. Decrypted values live only in memory,
long enough to be encrypted again into Stich's vault; they are never logged or reported."""

from __future__ import annotations

import base64
import binascii
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

IV_BYTES = 12
TAG_BYTES = 16


class BadSecretsKey(ValueError):
    """The --secrets-key given is not a base64 AES-256 key."""


class Undecryptable(ValueError):
    """A value that does not decrypt under the key (wrong key, or damaged)."""


class OriginalSecrets:
    def __init__(self, key_b64: str) -> None:
        try:
            key = base64.b64decode(key_b64.strip(), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise BadSecretsKey("--secrets-key is not base64") from exc
        if len(key) != 32:
            raise BadSecretsKey(f"--secrets-key must be 32 bytes (AES-256), not {len(key)}")
        self._aead = AESGCM(key)

    def decrypt(self, encrypted_value: str) -> str:
        try:
            blob = base64.b64decode(encrypted_value.strip(), validate=True)
        except (binascii.Error, ValueError, AttributeError) as exc:
            raise Undecryptable("not base64") from exc
        if len(blob) < IV_BYTES + TAG_BYTES:
            raise Undecryptable("too short")
        try:
            plain = self._aead.decrypt(blob[:IV_BYTES], blob[IV_BYTES:], None)
            return plain.decode()
        except (InvalidTag, UnicodeDecodeError) as exc:
            raise Undecryptable("does not decrypt with this key") from exc

    def __repr__(self) -> str:
        return "OriginalSecrets(<key hidden>)"


def encrypt_like_original(key_b64: str, value: str) -> str:
    """The original's stored form (for tests and the benchmark's source generator)."""
    iv = os.urandom(IV_BYTES)
    sealed = AESGCM(base64.b64decode(key_b64)).encrypt(iv, value.encode(), None)
    return base64.b64encode(iv + sealed).decode()
