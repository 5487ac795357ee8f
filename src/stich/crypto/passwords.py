"""Password hashing with argon2id (argon2-cffi).

Costs come from settings, so raising them later only needs a restart: a stored hash made
with older parameters still verifies, and :meth:`Passwords.needs_rehash` tells the sign-in
path to replace it while the plaintext is at hand.

:meth:`Passwords.verify` takes ``None`` for "no such account" (or an account without a
password) and then verifies against a dummy hash made with the same parameters, so an
unknown email costs the same time as a wrong password.
"""

from __future__ import annotations

import secrets
from functools import cached_property, lru_cache

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from stich.config import Settings
from stich.crypto import legacy_passwords

PASSWORD_MIN_LENGTH = 8
PASSWORD_MAX_LENGTH = 256


class Passwords:
    def __init__(self, *, time_cost: int, memory_cost: int, parallelism: int) -> None:
        self._hasher = PasswordHasher(
            time_cost=time_cost,
            memory_cost=memory_cost,
            parallelism=parallelism,
            hash_len=32,
            salt_len=16,
            type=Type.ID,
        )

    @cached_property
    def _dummy_hash(self) -> str:
        return self._hasher.hash(secrets.token_urlsafe(32))

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, stored_hash: str | None, password: str) -> bool:
        """True when ``password`` matches; always spends one argon2 verification."""
        if stored_hash is not None and legacy_passwords.is_legacy(stored_hash):
            return legacy_passwords.verify(stored_hash, password)  # imported; rehashed
        try:
            return self._hasher.verify(stored_hash or self._dummy_hash, password) and (
                stored_hash is not None
            )
        except VerifyMismatchError:
            return False
        except (VerificationError, InvalidHashError):
            # A corrupt stored hash must not become a 500 (or a way in).
            return False

    def needs_rehash(self, stored_hash: str) -> bool:
        try:
            return self._hasher.check_needs_rehash(stored_hash)
        except InvalidHashError:
            return True

    def warm_up(self) -> None:
        """Compute the dummy hash now, so the first unknown-email sign-in is not faster."""
        _ = self._dummy_hash

    def __repr__(self) -> str:
        params = self._hasher
        return (
            f"Passwords(argon2id t={params.time_cost} m={params.memory_cost}KiB "
            f"p={params.parallelism})"
        )


@lru_cache(maxsize=8)
def _passwords(time_cost: int, memory_cost: int, parallelism: int) -> Passwords:
    passwords = Passwords(time_cost=time_cost, memory_cost=memory_cost, parallelism=parallelism)
    passwords.warm_up()
    return passwords


def passwords_for(settings: Settings) -> Passwords:
    """The (shared, cached) hasher for the settings' argon2 parameters."""
    return _passwords(
        settings.argon2_time_cost, settings.argon2_memory_cost, settings.argon2_parallelism
    )
