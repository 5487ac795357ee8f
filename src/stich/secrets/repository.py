"""All SQL for secrets. Reads of a user's secrets go through :func:`owned_by`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypeAlias

from sqlalchemy import ColumnElement, Row, func, or_, select, update
from sqlalchemy.orm import Session

from stich.db.pagination import after
from stich.secrets.models import UserSecret

AnyRow: TypeAlias = Row[*tuple[Any, ...]]

# Everything a listing shows: no ciphertext, no key id.
METADATA_COLUMNS = (
    UserSecret.id,
    UserSecret.provider,
    UserSecret.secret_type,
    UserSecret.display_name,
    UserSecret.preview,
    UserSecret.is_active,
    UserSecret.usage_count,
    UserSecret.last_used_at,
    UserSecret.expires_at,
    UserSecret.created_at,
    UserSecret.updated_at,
)
# What decryption needs: the ciphertext and the fields it is bound to.
STORED_COLUMNS = (
    UserSecret.id,
    UserSecret.user_id,
    UserSecret.provider,
    UserSecret.key_id,
    UserSecret.ciphertext,
)


def owned_by(user_id: str) -> ColumnElement[bool]:
    """THE ownership predicate: the user's own secrets that are not deleted."""
    return (UserSecret.user_id == user_id) & UserSecret.deleted_at.is_(None)


def _stored() -> ColumnElement[bool]:
    return UserSecret.deleted_at.is_(None) & UserSecret.ciphertext.is_not(None)


class SecretRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, secret: UserSecret) -> UserSecret:
        self.session.add(secret)
        self.session.flush()
        return secret

    def get_owned(
        self, user_id: str, secret_id: str, *, for_update: bool = False
    ) -> UserSecret | None:
        query = select(UserSecret).where(UserSecret.id == secret_id, owned_by(user_id))
        if for_update:
            query = query.with_for_update()
        return self.session.scalars(query).one_or_none()

    def list_owned(
        self,
        user_id: str,
        *,
        limit: int,
        provider: str | None = None,
        before: tuple[datetime, str] | None = None,
    ) -> Sequence[AnyRow]:
        """Newest first, on (created_at, id); ``before`` is the last row of the previous page."""
        query = select(*METADATA_COLUMNS).where(owned_by(user_id))
        if provider is not None:
            query = query.where(UserSecret.provider == provider)
        if before is not None:
            query = query.where(
                after(
                    [UserSecret.created_at.expression, UserSecret.id.expression],
                    before,
                    descending=True,
                )
            )
        query = query.order_by(UserSecret.created_at.desc(), UserSecret.id.desc()).limit(limit)
        return self.session.execute(query).all()

    def record_use(self, secret_id: str, now: datetime) -> tuple[int, datetime]:
        """Count one use atomically (``usage_count + 1`` in SQL); the new count and time."""
        row = self.session.execute(
            update(UserSecret)
            .where(UserSecret.id == secret_id)
            .values(
                usage_count=UserSecret.usage_count + 1,
                last_used_at=now,
                updated_at=UserSecret.updated_at,  # a use is not an edit
            )
            .returning(UserSecret.usage_count, UserSecret.last_used_at)
            .execution_options(synchronize_session=False)
        ).one()
        return row.usage_count, row.last_used_at

    def wipe(self, user_id: str, secret_id: str, now: datetime) -> bool:
        """Soft-delete and destroy the ciphertext (and preview) in one conditional UPDATE."""
        deleted = self.session.execute(
            update(UserSecret)
            .where(UserSecret.id == secret_id, owned_by(user_id))
            .values(
                ciphertext=None,
                key_id=None,
                preview=None,
                is_active=False,
                deleted_at=now,
                updated_at=now,
            )
            .returning(UserSecret.id)
            .execution_options(synchronize_session=False)
        ).first()
        return deleted is not None

    # Key rotation and verification: every stored secret, in id order, in batches.

    def stored_batch(
        self, *, after_id: str | None, limit: int, not_under_key: str | None = None
    ) -> Sequence[AnyRow]:
        query = select(*STORED_COLUMNS).where(_stored())
        if not_under_key is not None:
            query = query.where(_not_under(not_under_key))
        if after_id is not None:
            query = query.where(UserSecret.id > after_id)
        return self.session.execute(query.order_by(UserSecret.id).limit(limit)).all()

    def count_stored(self, *, not_under_key: str | None = None) -> int:
        query = select(func.count()).select_from(UserSecret).where(_stored())
        if not_under_key is not None:
            query = query.where(_not_under(not_under_key))
        return self.session.execute(query).scalar_one()

    def replace_ciphertext_if_unchanged(
        self, secret_id: str, *, old: bytes, new: bytes, key_id: str
    ) -> bool:
        """Swap one row's ciphertext only if nobody changed it since it was read."""
        result = self.session.execute(
            update(UserSecret)
            .where(UserSecret.id == secret_id, UserSecret.ciphertext == old, _stored())
            .values(ciphertext=new, key_id=key_id, updated_at=UserSecret.updated_at)
            .returning(UserSecret.id)
            .execution_options(synchronize_session=False)
        ).first()
        return result is not None


def _not_under(key_id: str) -> ColumnElement[bool]:
    return or_(UserSecret.key_id.is_(None), UserSecret.key_id != key_id)
