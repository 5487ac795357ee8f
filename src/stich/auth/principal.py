"""Who is acting: a signed-in user (by session or API key), an anonymous visitor, or nobody.

Services take a Principal and apply ownership and visibility rules with it; they never
look at HTTP headers.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from stich.users.models import Role


class PrincipalKind(StrEnum):
    USER = "user"
    ANONYMOUS = "anonymous"


@dataclass(frozen=True)
class Principal:
    kind: PrincipalKind
    user_id: str | None = None
    role: Role = Role.USER
    # Keyed hash of the anonymous token: the value stored in apps.anonymous_owner_hash.
    anonymous_owner_hash: str | None = None
    session_id: str | None = None
    api_key_id: str | None = None
    scopes: frozenset[str] = frozenset()
    # False when STICH_REQUIRE_VERIFIED_EMAIL keeps this (unverified) account from making
    # an app public; set by the authentication dependency from the account's state.
    may_publish: bool = True

    @property
    def is_admin(self) -> bool:
        return self.kind is PrincipalKind.USER and self.role is Role.ADMIN

    @property
    def is_user(self) -> bool:
        return self.kind is PrincipalKind.USER

    @classmethod
    def user(cls, user_id: str, role: Role = Role.USER, **extra: object) -> Principal:
        return cls(kind=PrincipalKind.USER, user_id=user_id, role=role, **extra)  # type: ignore[arg-type]

    @classmethod
    def anonymous(cls, owner_hash: str) -> Principal:
        return cls(kind=PrincipalKind.ANONYMOUS, anonymous_owner_hash=owner_hash)
