"""SQL for single-use email tokens and the per-address send cooldown."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from stich.analytics.sql import insert_for
from stich.auth.models import EmailCooldown, EmailToken, EmailTokenPurpose


class EmailTokenRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def issue(
        self,
        *,
        purpose: EmailTokenPurpose,
        user_id: str,
        email: str,
        token_hash: str,
        expires_at: datetime,
        now: datetime,
    ) -> None:
        """Record a new token; the account's older live tokens of the purpose expire now."""
        self.void(user_id, [purpose], now)
        self.session.add(
            EmailToken(
                purpose=purpose,
                user_id=user_id,
                email=email,
                token_hash=token_hash,
                expires_at=expires_at,
                created_at=now,
            )
        )
        self.session.flush()

    def void(self, user_id: str, purposes: list[EmailTokenPurpose], now: datetime) -> None:
        self.session.execute(
            update(EmailToken)
            .where(
                EmailToken.user_id == user_id,
                EmailToken.purpose.in_(purposes),
                EmailToken.used_at.is_(None),
                EmailToken.expires_at > now,
            )
            .values(expires_at=now)
            .execution_options(synchronize_session=False)
        )

    def consume(
        self, purpose: EmailTokenPurpose, token_hash: str, now: datetime
    ) -> tuple[str, str] | None:
        """Mark the token used and return (user id, address); None if it is not usable.

        One conditional UPDATE: of two concurrent confirmations exactly one gets the row.
        """
        row = self.session.execute(
            update(EmailToken)
            .where(
                EmailToken.token_hash == token_hash,
                EmailToken.purpose == purpose,
                EmailToken.used_at.is_(None),
                EmailToken.expires_at > now,
            )
            .values(used_at=now)
            .returning(EmailToken.user_id, EmailToken.email)
            .execution_options(synchronize_session=False)
        ).first()
        return (row[0], row[1]) if row is not None else None

    def find(self, purpose: EmailTokenPurpose, token_hash: str) -> EmailToken | None:
        """The token's row (to say why it was refused)."""
        return self.session.scalar(
            select(EmailToken).where(
                EmailToken.token_hash == token_hash, EmailToken.purpose == purpose
            )
        )

    def cooldown_passed(self, key_hash: str, now: datetime, cooldown: timedelta) -> bool:
        """Stamp the (purpose, address) key and say whether its last mail is old enough.

        An upsert whose update only applies after the cooldown, so concurrent requests
        for one address let at most one mail through per period.
        """
        statement: Any = insert_for(self.session, EmailCooldown).values(
            key_hash=key_hash, last_sent_at=now
        )
        statement = statement.on_conflict_do_update(
            index_elements=["key_hash"],
            set_={"last_sent_at": now},
            where=EmailCooldown.last_sent_at <= now - cooldown,
        ).returning(EmailCooldown.key_hash)
        return self.session.execute(statement).first() is not None
