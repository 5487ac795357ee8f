"""Email verification, password reset and email change: the rules.

Like every service this never commits and never sends: the messages it decides on are
collected in :attr:`EmailFlows.outgoing`, and the endpoint hands them to the mail sender
only after its unit of work has committed (a rolled-back request sends nothing).

Requests that name an address (verification, forgotten password, email change) answer
the same whether or not an account has it, and do the same reads and writes either way:
a lookup, the address's cooldown stamp and an audit entry. Building and delivering the
message happen later, in the sender thread, off the request's clock.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from stich.audit.service import AuditService, RequestMeta
from stich.auth.email_repository import EmailTokenRepository
from stich.auth.models import EmailTokenPurpose
from stich.auth.principal import Principal
from stich.auth.repository import AuthRepository
from stich.config import Settings
from stich.crypto.tokens import KeyedHasher
from stich.errors import Conflict, NotFound, StichError, Unauthorized
from stich.mail.message import OutgoingMail, Template
from stich.users.models import User
from stich.users.repository import UserRepository
from stich.users.schemas import normalize_email

Purpose = EmailTokenPurpose
# Recognisable prefixes (like stich_sat_, stich_sk_) for leak scanners; never bearer tokens.
_PREFIXES = {
    Purpose.VERIFY_EMAIL: "stich_sev_",
    Purpose.RESET_PASSWORD: "stich_spr_",
    Purpose.CHANGE_EMAIL: "stich_sec_",
}
_TEMPLATES = {
    Purpose.VERIFY_EMAIL: Template.VERIFY_EMAIL,
    Purpose.RESET_PASSWORD: Template.RESET_PASSWORD,
    Purpose.CHANGE_EMAIL: Template.CHANGE_EMAIL,
}


@dataclass(frozen=True)
class EmailPolicy:
    ttl: dict[EmailTokenPurpose, timedelta]
    cooldown: timedelta

    @classmethod
    def from_settings(cls, settings: Settings) -> EmailPolicy:
        return cls(
            ttl={
                Purpose.VERIFY_EMAIL: timedelta(seconds=settings.email_verification_ttl_seconds),
                Purpose.RESET_PASSWORD: timedelta(seconds=settings.password_reset_ttl_seconds),
                Purpose.CHANGE_EMAIL: timedelta(seconds=settings.email_change_ttl_seconds),
            },
            cooldown=timedelta(seconds=settings.email_cooldown_seconds),
        )


@dataclass(frozen=True)
class ResetDone:
    user_id: str
    sessions_revoked: int
    api_keys_revoked: int


def token_looks_right(purpose: EmailTokenPurpose, token: str) -> bool:
    body = token.removeprefix(_PREFIXES[purpose])
    return body != token and 20 <= len(body) <= 100


def _usable(user: User | None) -> bool:
    return user is not None and user.deleted_at is None and user.is_active and not user.is_suspended


class EmailFlows:
    def __init__(
        self, session: Session, meta: RequestMeta, hasher: KeyedHasher, policy: EmailPolicy
    ) -> None:
        self.session = session
        self.hasher = hasher
        self.policy = policy
        self.tokens = EmailTokenRepository(session)
        self.users = UserRepository(session)
        self.auth = AuthRepository(session)
        self.audit = AuditService(session, meta)
        self.outgoing: list[OutgoingMail] = []

    @classmethod
    def for_settings(
        cls, session: Session, meta: RequestMeta, hasher: KeyedHasher, settings: Settings
    ) -> EmailFlows:
        return cls(session, meta, hasher, EmailPolicy.from_settings(settings))

    # -- issuing ------------------------------------------------------------------------

    def _address_hash(self, email: str) -> str:
        return self.hasher.hash(email, purpose="mail-address")

    def _cooldown_passed(
        self, purpose: EmailTokenPurpose, email: str, now: datetime, cooldown: timedelta
    ) -> bool:
        key = self.hasher.hash(f"{purpose.value}\x00{email}", purpose="mail-cooldown")
        return self.tokens.cooldown_passed(key, now, cooldown)

    def _issue(self, user: User, purpose: EmailTokenPurpose, email: str, now: datetime) -> None:
        token = _PREFIXES[purpose] + secrets.token_urlsafe(32)
        ttl = self.policy.ttl[purpose]
        self.tokens.issue(
            purpose=purpose,
            user_id=user.id,
            email=email,
            token_hash=self.hasher.token_hash(token),
            expires_at=now + ttl,
            now=now,
        )
        self.outgoing.append(
            OutgoingMail(_TEMPLATES[purpose], email, user.display_name, email, token, ttl)
        )

    def send_verification(self, user: User, now: datetime) -> None:
        """At sign-up: a verification link, no questions asked (the account is new)."""
        self._cooldown_passed(Purpose.VERIFY_EMAIL, user.email, now, timedelta(0))
        self._issue(user, Purpose.VERIFY_EMAIL, user.email, now)

    def request_for_address(
        self,
        purpose: EmailTokenPurpose,
        raw_email: str,
        now: datetime,
        *,
        by_operator: bool,
        actor: Principal | None = None,
    ) -> bool:
        """A verification or reset link for whoever owns the address, if anyone does.

        The caller answers the same whatever this finds; True only says a mail was
        queued (for the operator's command line).
        """
        try:
            email: str | None = normalize_email(raw_email)
        except ValueError:
            email = None
        address = email or raw_email.strip().lower()
        user = self.users.by_email(email) if email is not None else None
        # An operator's request skips the cooldown, which is for the public endpoints.
        cooldown = timedelta(0) if by_operator else self.policy.cooldown
        allowed = self._cooldown_passed(purpose, address, now, cooldown)
        wanted = _usable(user) and not (
            purpose is Purpose.VERIFY_EMAIL and user is not None and user.email_verified
        )
        sent = bool(allowed and wanted and user is not None)
        if sent and user is not None:
            self._issue(user, purpose, user.email, now)
        action = (
            "auth.email_verification_requested"
            if purpose is Purpose.VERIFY_EMAIL
            else "auth.password_reset_requested"
        )
        self.audit.record(
            action,
            actor=actor,
            subject_user_id=user.id if user is not None else None,
            resource_type="user" if user is not None else None,
            resource_id=user.id if user is not None else None,
            new={"sent": sent, "by_operator": by_operator}
            if user is not None
            else {"email_hash": self._address_hash(address)},
        )
        return sent

    def request_email_change(self, principal: Principal, new_email: str, now: datetime) -> None:
        """A confirmation link to the new address and a notice to the current one.

        An address another account has gets the same answer and the same notice; it only
        gets no link (the change would fail at confirmation anyway).
        """
        user = self._account(principal)
        if new_email == user.email:
            raise Conflict("this is already the account's address", code="email_unchanged")
        self.tokens.void(user.id, [Purpose.CHANGE_EMAIL], now)
        allowed = self._cooldown_passed(Purpose.CHANGE_EMAIL, new_email, now, self.policy.cooldown)
        if allowed and not self.users.email_taken(new_email):
            self._issue(user, Purpose.CHANGE_EMAIL, new_email, now)
        if allowed:
            self.outgoing.append(
                OutgoingMail(
                    Template.EMAIL_CHANGE_NOTICE, user.email, user.display_name, user.email
                )
            )
        self.audit.record(
            "user.email_change_requested",
            actor=principal,
            resource_type="user",
            resource_id=user.id,
            new={"new_email": new_email},
        )

    # -- consuming ----------------------------------------------------------------------

    def _consume(self, purpose: EmailTokenPurpose, token: str, now: datetime) -> tuple[User, str]:
        """The account and address of a usable token, now spent; else a 401 saying why.

        401 as for a refresh token: the link is a one-time credential for the mailbox.
        """
        if not token_looks_right(purpose, token):
            raise _invalid_token()
        digest = self.hasher.token_hash(token)
        consumed = self.tokens.consume(purpose, digest, now)
        if consumed is None:
            raise self._why_refused(purpose, digest)
        user_id, email = consumed
        user = self.users.by_id_for_update(user_id)
        if user is None or not _usable(user):
            raise _invalid_token()
        if purpose is not Purpose.CHANGE_EMAIL and user.email != email:
            # Sent to an address the account no longer has: it proves nothing now.
            raise _invalid_token()
        return user, email

    def _why_refused(self, purpose: EmailTokenPurpose, digest: str) -> StichError:
        row = self.tokens.find(purpose, digest)
        if row is None:
            return _invalid_token()
        if row.used_at is not None:
            return Unauthorized("this link was already used", code="email_token_used")
        return Unauthorized(
            "this link has expired or was replaced by a newer one; ask for a new one",
            code="email_token_expired",
        )

    def confirm_verification(self, token: str, now: datetime) -> User:
        user, _ = self._consume(Purpose.VERIFY_EMAIL, token, now)
        if not user.email_verified:
            user.email_verified = True
            self.session.flush()
        self.audit.record(
            "user.email_verified",
            actor=Principal.user(user.id, user.role),
            resource_type="user",
            resource_id=user.id,
            new={"email_verified": True},
        )
        return user

    def reset_password(self, token: str, new_hash: str, now: datetime) -> ResetDone:
        """Set the password, end the lockout, and revoke every session and API key."""
        user, _ = self._consume(Purpose.RESET_PASSWORD, token, now)
        user.password_hash = new_hash
        user.password_changed_at = now
        user.failed_login_attempts = 0
        user.locked_until = None
        user.email_verified = True  # the link reached the address
        self.session.flush()
        self.tokens.void(user.id, [Purpose.RESET_PASSWORD, Purpose.VERIFY_EMAIL], now)
        sessions = self.auth.revoke_families(user.id, now, "password_reset")
        keys = self.auth.revoke_all_keys(user.id, now)
        self.audit.record(
            "user.password_reset",
            actor=Principal.user(user.id, user.role),
            resource_type="user",
            resource_id=user.id,
            new={"sessions_revoked": len(sessions), "api_keys_revoked": keys},
        )
        return ResetDone(user.id, len(sessions), keys)

    def confirm_email_change(self, token: str, now: datetime) -> User:
        user, new_email = self._consume(Purpose.CHANGE_EMAIL, token, now)
        if self.users.email_taken(new_email):
            raise Conflict("an account with this email already exists", code="email_taken")
        old_email = user.email
        user.email = new_email
        user.email_verified = True
        self.session.flush()
        # Links sent to the old address prove nothing about the new one.
        self.tokens.void(user.id, list(Purpose), now)
        self.audit.record(
            "user.email_changed",
            actor=Principal.user(user.id, user.role),
            resource_type="user",
            resource_id=user.id,
            old={"email": old_email},
            new={"email": new_email},
        )
        self.outgoing.append(
            OutgoingMail(Template.EMAIL_CHANGED, old_email, user.display_name, old_email)
        )
        return user

    # -- operators ----------------------------------------------------------------------

    def mark_verified(self, email: str, actor: Principal | None) -> User:
        user = self.users.by_email(email)
        if user is None or user.deleted_at is not None:
            raise NotFound(f"no account with the email {email}", code="user_not_found")
        if not user.email_verified:
            user.email_verified = True
            self.session.flush()
            self.audit.record(
                "user.email_verified",
                actor=actor,
                subject_user_id=user.id,
                resource_type="user",
                resource_id=user.id,
                new={"email_verified": True, "by_operator": True},
            )
        return user

    def _account(self, principal: Principal) -> User:
        user = self.users.by_id(principal.user_id or "")
        if user is None or not _usable(user):
            raise Unauthorized("this account cannot sign in", code="account_unavailable")
        return user


def _invalid_token() -> Unauthorized:
    return Unauthorized("this link is not valid", code="email_token_invalid")
