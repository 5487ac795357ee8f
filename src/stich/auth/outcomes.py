"""Sign-in policy and its outcomes: the value types the auth service returns, the errors it
raises, and the account checks every entry point shares (usable account, password lock)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from stich.auth.models import UserSession
from stich.auth.schemas import TokenPair
from stich.config import Settings
from stich.errors import Forbidden, Locked, StichError, Unauthorized
from stich.users.models import User


@dataclass(frozen=True)
class AuthPolicy:
    access_ttl: timedelta
    refresh_ttl: timedelta
    reuse_grace: timedelta
    max_sessions: int
    max_api_keys: int
    lockout_threshold: int
    lockout_base: timedelta
    lockout_max: timedelta
    require_verified_email: str = "never"

    @classmethod
    def from_settings(cls, settings: Settings) -> AuthPolicy:
        return cls(
            access_ttl=timedelta(seconds=settings.access_token_ttl_seconds),
            refresh_ttl=timedelta(seconds=settings.refresh_token_ttl_seconds),
            reuse_grace=timedelta(seconds=settings.refresh_reuse_grace_seconds),
            max_sessions=settings.max_sessions_per_user,
            max_api_keys=settings.max_api_keys_per_user,
            lockout_threshold=settings.lockout_threshold,
            lockout_base=timedelta(seconds=settings.lockout_base_seconds),
            lockout_max=timedelta(seconds=settings.lockout_max_seconds),
            require_verified_email=settings.require_verified_email,
        )

    def lock_for(self, consecutive_failures: int) -> timedelta | None:
        """How long to lock after this many consecutive failures (None: not yet)."""
        beyond = consecutive_failures - self.lockout_threshold
        if beyond < 0:
            return None
        # Cap the exponent before multiplying: 2**40 seconds would overflow timedelta.
        factor = 2 ** min(beyond, 40)
        seconds = min(self.lockout_base.total_seconds() * factor, self.lockout_max.total_seconds())
        return timedelta(seconds=seconds)


@dataclass(frozen=True)
class Client:
    """The device a session is opened from (the raw IP is only masked, then dropped)."""

    ip: str | None = None
    user_agent: str | None = None


@dataclass(frozen=True)
class Refused:
    """A refusal to raise *after* the unit of work commits what it recorded."""

    error: StichError


@dataclass(frozen=True)
class Issued:
    """A freshly opened session: the only moment its tokens exist in plaintext."""

    session: UserSession
    access_token: str
    refresh_token: str

    def token_pair(self, now: datetime) -> TokenPair:
        return TokenPair(
            access_token=self.access_token,
            refresh_token=self.refresh_token,
            expires_in=max(0, int((self.session.access_expires_at - now).total_seconds())),
            access_expires_at=self.session.access_expires_at,
            refresh_expires_at=self.session.expires_at,
            session_id=self.session.family_id,
        )


@dataclass(frozen=True)
class SignedIn:
    user: User
    issued: Issued
    claimed_apps: int = 0


@dataclass(frozen=True)
class LoginAttempt:
    """What the read phase of a sign-in learnt (before the slow password check)."""

    email_hash: str
    user_id: str | None
    password_hash: str | None
    locked_until: datetime | None

    def retry_after(self, now: datetime) -> int | None:
        if self.locked_until is None or self.locked_until <= now:
            return None
        return max(1, math.ceil((self.locked_until - now).total_seconds()))


def invalid_credentials() -> Unauthorized:
    # The same error, word for word, for an unknown email and a wrong password.
    return Unauthorized("the email or password is incorrect", code="invalid_credentials")


def locked_error(retry_after: int) -> Locked:
    return Locked(
        "too many failed sign-in attempts; try again later",
        code="too_many_attempts",
        details={"retry_after": retry_after},
        headers={"Retry-After": str(retry_after)},
    )


def email_not_verified() -> Forbidden:
    return Forbidden(
        "confirm your email address first: follow the link we sent, or ask for a new one "
        "with POST /api/auth/email/verify/request",
        code="email_not_verified",
        details={"resend": "/api/auth/email/verify/request"},
    )


def user_is_usable(user: User | None, now: datetime) -> bool:
    """Whether the account's credentials (sessions, refresh tokens, keys, OAuth) work.

    A sign-in lock is not a reason to refuse them: it protects the password, and anyone
    can cause one by guessing; taking away credentials already proven would let anyone
    sign a victim out (issue 13).
    """
    if user is None:
        return False
    return user.is_active and not user.is_suspended and user.deleted_at is None


def password_lock(user: User, now: datetime) -> Locked | None:
    """The refusal for a password check while the account is locked (None: not locked).

    Password re-authentication is refused like a sign-in, before the password is checked.
    """
    if user.locked_until is None or user.locked_until <= now:
        return None
    return locked_error(max(1, math.ceil((user.locked_until - now).total_seconds())))
