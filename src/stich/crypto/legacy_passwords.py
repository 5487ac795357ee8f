"""Password hashes imported from the original system (``stich import original``).

The original stored ``base64(salt[16] || PBKDF2-HMAC-SHA256(password, salt, 100000)[32])``.
Imported hashes are kept as ``$pbkdf2-sha256$100000$<that base64>``: :class:`Passwords`
verifies them here, and because argon2 cannot parse them, ``needs_rehash`` is true and
the first successful sign-in replaces them with argon2id.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

ITERATIONS = 100_000
SALT_BYTES = 16
HASH_BYTES = 32
PREFIX = f"$pbkdf2-sha256${ITERATIONS}$"


def from_original(stored: str) -> str | None:
    """The Stich form of an original hash, or None when it is not in the original's format."""
    try:
        raw = base64.b64decode(stored.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(raw) != SALT_BYTES + HASH_BYTES:
        return None
    return PREFIX + base64.b64encode(raw).decode()


def is_legacy(stored_hash: str) -> bool:
    return stored_hash.startswith(PREFIX)


def verify(stored_hash: str, password: str) -> bool:
    raw = base64.b64decode(stored_hash.removeprefix(PREFIX))
    salt, expected = raw[:SALT_BYTES], raw[SALT_BYTES:]
    actual = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, ITERATIONS, HASH_BYTES)
    return hmac.compare_digest(actual, expected)


def hash_like_original(password: str, salt: bytes) -> str:
    """The original's stored form (for tests and the benchmark's source generator)."""
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, ITERATIONS, HASH_BYTES)
    return base64.b64encode(salt + digest).decode()
