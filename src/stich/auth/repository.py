"""All SQL for sessions, API keys, anonymous owners, sign-in throttles, OAuth states and
identities. Every statement that decides a race is a single conditional write."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import ColumnElement, CursorResult, Result, delete, func, or_, select, update
from sqlalchemy.orm import Session

from stich.analytics.sql import insert_for
from stich.apps.models import App
from stich.auth.models import (
    AnonymousOwner,
    ApiKey,
    EmailCooldown,
    EmailToken,
    LoginThrottle,
    OAuthState,
    UserSession,
)
from stich.users.models import AuthProvider, User, UserIdentity


@dataclass(frozen=True)
class Credential:
    """What the authentication dependency needs about a bearer credential and its owner."""

    id: str
    revoked: bool
    expires_at: datetime | None
    last_used_at: datetime | None
    scopes: tuple[str, ...]
    user: User


@dataclass(frozen=True)
class PurgeTarget:
    label: str
    model: type[Any]
    condition: ColumnElement[bool]


def affected_rows(result: Result[Any]) -> int:
    """Rows an UPDATE or DELETE changed."""
    rowcount: int = cast(CursorResult[Any], result).rowcount
    return rowcount


def _active_session(now: datetime) -> ColumnElement[bool]:
    return (UserSession.revoked_at.is_(None)) & (UserSession.expires_at > now)


def _active_key(now: datetime) -> ColumnElement[bool]:
    return ApiKey.revoked_at.is_(None) & or_(ApiKey.expires_at.is_(None), ApiKey.expires_at > now)


class AuthRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    # -- authentication lookups --------------------------------------------------------

    def credential_for_access_token(self, digest: str) -> Credential | None:
        row = self.session.execute(
            select(UserSession, User)
            .join(User, User.id == UserSession.user_id)
            .where(UserSession.access_token_hash == digest)
        ).one_or_none()
        if row is None:
            return None
        found, user = row
        return Credential(
            id=found.id,
            revoked=found.revoked_at is not None,
            expires_at=found.access_expires_at,
            last_used_at=found.last_used_at,
            scopes=(),
            user=user,
        )

    def credential_for_api_key(self, digest: str) -> Credential | None:
        row = self.session.execute(
            select(ApiKey, User)
            .join(User, User.id == ApiKey.user_id)
            .where(ApiKey.key_hash == digest)
        ).one_or_none()
        if row is None:
            return None
        key, user = row
        return Credential(
            id=key.id,
            revoked=key.revoked_at is not None,
            expires_at=key.expires_at,
            last_used_at=key.last_used_at,
            scopes=tuple(key.scopes),
            user=user,
        )

    def touch_session(self, session_id: str, user_id: str, now: datetime, every: timedelta) -> bool:
        """Record use at most once per ``every``: a no-op if another request just did it."""
        stale = now - every
        touched = affected_rows(
            self.session.execute(
                update(UserSession)
                .where(
                    UserSession.id == session_id,
                    or_(UserSession.last_used_at.is_(None), UserSession.last_used_at < stale),
                )
                .values(last_used_at=now)
                .execution_options(synchronize_session=False)
            )
        )
        if touched:
            self.session.execute(
                update(User)
                .where(User.id == user_id)
                .values(last_active_at=now, updated_at=User.updated_at)  # not a profile change
                .execution_options(synchronize_session=False)
            )
        return bool(touched)

    def add_key_usage(self, key_id: str, uses: int, now: datetime) -> None:
        self.session.execute(
            update(ApiKey)
            .where(ApiKey.id == key_id)
            .values(usage_count=ApiKey.usage_count + uses, last_used_at=now)
            .execution_options(synchronize_session=False)
        )

    # -- sessions ----------------------------------------------------------------------

    def add_session(self, row: UserSession) -> UserSession:
        self.session.add(row)
        self.session.flush()
        return row

    def rotate(self, refresh_hash: str, now: datetime) -> UserSession | None:
        """Retire the live session holding this refresh token; None if it is not live.

        One conditional UPDATE: of two concurrent refreshes, exactly one gets the row.
        """
        return self.session.execute(
            update(UserSession)
            .where(UserSession.refresh_token_hash == refresh_hash, _active_session(now))
            .values(revoked_at=now, revoked_reason="rotated")
            .returning(UserSession)
            .execution_options(synchronize_session=False)
        ).scalar_one_or_none()

    def session_by_refresh_hash(self, refresh_hash: str) -> UserSession | None:
        return self.session.scalars(
            select(UserSession).where(UserSession.refresh_token_hash == refresh_hash)
        ).one_or_none()

    def mark_replaced(self, session_id: str, replaced_by_id: str) -> None:
        self.session.execute(
            update(UserSession)
            .where(UserSession.id == session_id)
            .values(replaced_by_id=replaced_by_id)
            .execution_options(synchronize_session=False)
        )

    def family_of(self, session_id: str) -> str | None:
        return self.session.scalar(
            select(UserSession.family_id).where(UserSession.id == session_id)
        )

    def revoke_families(
        self,
        user_id: str,
        now: datetime,
        reason: str,
        *,
        only: Sequence[str] | None = None,
        keep: str | None = None,
    ) -> list[str]:
        """Revoke the user's live sessions (all, ``only`` these families, or all but
        ``keep``); returns the families revoked."""
        condition = (UserSession.user_id == user_id) & _active_session(now)
        if only is not None:
            condition &= UserSession.family_id.in_(list(only))
        if keep is not None:
            condition &= UserSession.family_id != keep
        revoked = self.session.execute(
            update(UserSession)
            .where(condition)
            .values(revoked_at=now, revoked_reason=reason)
            .returning(UserSession.family_id)
            .execution_options(synchronize_session=False)
        ).scalars()
        return sorted(set(revoked))

    def revoke_whole_family(self, family_id: str, now: datetime, reason: str) -> int:
        """Theft response: every unrevoked row of the family, whatever its expiry."""
        return affected_rows(
            self.session.execute(
                update(UserSession)
                .where(UserSession.family_id == family_id, UserSession.revoked_at.is_(None))
                .values(revoked_at=now, revoked_reason=reason)
                .execution_options(synchronize_session=False)
            )
        )

    def active_sessions(self, user_id: str, now: datetime) -> list[UserSession]:
        return list(
            self.session.scalars(
                select(UserSession)
                .where(UserSession.user_id == user_id, _active_session(now))
                .order_by(UserSession.created_at.desc(), UserSession.id.desc())
            )
        )

    def families_beyond(self, user_id: str, keep: int, now: datetime) -> list[str]:
        """Live session families past the newest ``keep`` (the ones to evict)."""
        query = (
            select(UserSession.family_id)
            .where(UserSession.user_id == user_id, _active_session(now))
            .order_by(UserSession.created_at.desc(), UserSession.id.desc())
            .offset(keep)
        )
        return list(self.session.scalars(query))

    # -- API keys ----------------------------------------------------------------------

    def lock_user(self, user_id: str) -> None:
        """Serialise per-user caps (SELECT ... FOR UPDATE; SQLite writers are serial)."""
        self.session.execute(select(User.id).where(User.id == user_id).with_for_update())

    def count_active_keys(self, user_id: str, now: datetime) -> int:
        return (
            self.session.scalar(
                select(func.count())
                .select_from(ApiKey)
                .where(ApiKey.user_id == user_id, _active_key(now))
            )
            or 0
        )

    def add_key(self, key: ApiKey) -> ApiKey:
        self.session.add(key)
        self.session.flush()
        return key

    def active_keys(self, user_id: str, now: datetime) -> list[ApiKey]:
        return list(
            self.session.scalars(
                select(ApiKey)
                .where(ApiKey.user_id == user_id, _active_key(now))
                .order_by(ApiKey.created_at.desc(), ApiKey.id.desc())
            )
        )

    def revoke_key(self, user_id: str, key_id: str, now: datetime) -> ApiKey | None:
        return self.session.execute(
            update(ApiKey)
            .where(ApiKey.id == key_id, ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None))
            .values(revoked_at=now)
            .returning(ApiKey)
            .execution_options(synchronize_session=False)
        ).scalar_one_or_none()

    def revoke_all_keys(self, user_id: str, now: datetime) -> int:
        return affected_rows(
            self.session.execute(
                update(ApiKey)
                .where(ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None))
                .values(revoked_at=now)
                .execution_options(synchronize_session=False)
            )
        )

    # -- anonymous owners --------------------------------------------------------------

    def record_anonymous(self, owner_hash: str, now: datetime) -> None:
        self.session.execute(
            insert_for(self.session, AnonymousOwner)
            .values(owner_hash=owner_hash, created_at=now)
            .on_conflict_do_nothing(index_elements=["owner_hash"])
        )

    def anonymous_claimed(self, owner_hash: str) -> bool:
        claimed = self.session.scalar(
            select(AnonymousOwner.claimed_at).where(AnonymousOwner.owner_hash == owner_hash)
        )
        return claimed is not None

    def claim_anonymous(self, owner_hash: str, user_id: str, now: datetime) -> bool:
        """Mark the token claimed by ``user_id``; False if it already was (by anyone).

        An upsert whose update only applies while ``claimed_at IS NULL``: concurrent
        claims serialise on the row and exactly one sees it unclaimed.
        """
        statement: Any = insert_for(self.session, AnonymousOwner).values(
            owner_hash=owner_hash, created_at=now, claimed_at=now, claimed_by_user_id=user_id
        )
        statement = statement.on_conflict_do_update(
            index_elements=["owner_hash"],
            set_={"claimed_at": now, "claimed_by_user_id": user_id},
            where=AnonymousOwner.claimed_at.is_(None),
        ).returning(AnonymousOwner.owner_hash)
        return self.session.execute(statement).first() is not None

    def move_anonymous_apps(self, owner_hash: str, user_id: str) -> list[str]:
        moved = self.session.execute(
            update(App)
            .where(App.anonymous_owner_hash == owner_hash)
            .values(user_id=user_id, anonymous_owner_hash=None)
            .returning(App.id)
            .execution_options(synchronize_session=False)
        ).scalars()
        return sorted(moved)

    # -- sign-in throttles for unknown emails -------------------------------------------

    def throttle(self, email_hash: str) -> LoginThrottle | None:
        return self.session.get(LoginThrottle, email_hash)

    def count_unknown_failure(self, email_hash: str, now: datetime) -> int:
        statement: Any = insert_for(self.session, LoginThrottle).values(
            email_hash=email_hash, failed_attempts=1, updated_at=now
        )
        statement = statement.on_conflict_do_update(
            index_elements=["email_hash"],
            set_={"failed_attempts": LoginThrottle.failed_attempts + 1, "updated_at": now},
        ).returning(LoginThrottle.failed_attempts)
        attempts: int = self.session.execute(statement).scalar_one()
        return attempts

    def lock_unknown(self, email_hash: str, until: datetime) -> None:
        self.session.execute(
            update(LoginThrottle)
            .where(LoginThrottle.email_hash == email_hash)
            .values(locked_until=until)
            .execution_options(synchronize_session=False)
        )

    # -- OAuth states and identities ----------------------------------------------------

    def add_oauth_state(self, state: OAuthState) -> OAuthState:
        self.session.add(state)
        self.session.flush()
        return state

    def consume_oauth_state(
        self, state_hash: str, provider: AuthProvider, now: datetime
    ) -> OAuthState | None:
        """Mark the state used; None if unknown, expired, for another provider, or used.

        ``UPDATE ... WHERE consumed_at IS NULL RETURNING``: one callback wins, ever.
        """
        return self.session.execute(
            update(OAuthState)
            .where(
                OAuthState.state_hash == state_hash,
                OAuthState.provider == provider,
                OAuthState.consumed_at.is_(None),
                OAuthState.expires_at > now,
            )
            .values(consumed_at=now)
            .returning(OAuthState)
            .execution_options(synchronize_session=False)
        ).scalar_one_or_none()

    def identity(self, provider: AuthProvider, provider_id: str) -> UserIdentity | None:
        return self.session.scalars(
            select(UserIdentity).where(
                UserIdentity.provider == provider, UserIdentity.provider_id == provider_id
            )
        ).one_or_none()

    def identities_for(self, user_id: str) -> list[UserIdentity]:
        return list(
            self.session.scalars(
                select(UserIdentity)
                .where(UserIdentity.user_id == user_id)
                .order_by(UserIdentity.created_at, UserIdentity.id)
            )
        )

    def add_identity(self, identity: UserIdentity) -> UserIdentity:
        self.session.add(identity)
        self.session.flush()
        return identity

    def delete_identity(self, identity: UserIdentity) -> None:
        self.session.execute(delete(UserIdentity).where(UserIdentity.id == identity.id))

    def delete_identities_for(self, user_id: str) -> int:
        return affected_rows(
            self.session.execute(delete(UserIdentity).where(UserIdentity.user_id == user_id))
        )

    # -- housekeeping (stich auth cleanup) ----------------------------------------------

    @staticmethod
    def purge_targets(
        now: datetime, *, key_retention: timedelta, throttle_idle: timedelta
    ) -> list[PurgeTarget]:
        """Rows that no longer protect or record anything.

        Sessions stay until they expire even when revoked: a rotated refresh token must
        still be recognised (and its family revoked) if it is replayed. Revoked or expired
        API keys stay ``key_retention`` so their owner can see what stopped working.
        """
        key_gone = now - key_retention
        return [
            PurgeTarget("expired sessions", UserSession, UserSession.expires_at <= now),
            PurgeTarget("expired OAuth states", OAuthState, OAuthState.expires_at <= now),
            PurgeTarget(
                "revoked or expired API keys",
                ApiKey,
                or_(ApiKey.revoked_at <= key_gone, ApiKey.expires_at <= key_gone),
            ),
            PurgeTarget(
                "idle sign-in throttles",
                LoginThrottle,
                (LoginThrottle.updated_at <= now - throttle_idle)
                & or_(LoginThrottle.locked_until.is_(None), LoginThrottle.locked_until <= now),
            ),
            # Used links stay until they expire, so a second use says "already used".
            PurgeTarget("expired email links", EmailToken, EmailToken.expires_at <= now),
            PurgeTarget(
                "idle email cooldowns",
                EmailCooldown,
                # Cooldowns are at most a day (STICH_EMAIL_COOLDOWN_SECONDS <= 86400).
                EmailCooldown.last_sent_at <= now - max(throttle_idle, timedelta(days=1)),
            ),
        ]

    def purge_batch(self, model: type[Any], condition: ColumnElement[bool], limit: int) -> int:
        """Delete up to ``limit`` rows matching ``condition``; returns how many went."""
        key = model.__mapper__.primary_key[0]
        ids = select(key).where(condition).limit(limit)
        return affected_rows(
            self.session.execute(
                delete(model).where(key.in_(ids)).execution_options(synchronize_session=False)
            )
        )

    def count(self, model: type[Any], condition: ColumnElement[bool]) -> int:
        return self.session.scalar(select(func.count()).select_from(model).where(condition)) or 0
