"""Sign-in, sessions, API keys and anonymous owners: the rules.

Services never commit. Some refusals must still be *recorded* (a failed sign-in counts
towards lockout, a replayed refresh token revokes its family): those methods return a
:class:`Refused` instead of raising, the endpoint lets the unit of work commit, and then
raises ``refused.error``. Anything raised inside the unit of work rolls it back.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from stich.audit.service import AuditService, RequestMeta
from stich.auth.anonymous import mint_anonymous_token
from stich.auth.models import ApiKey, UserSession
from stich.auth.outcomes import (
    AuthPolicy,
    Client,
    Issued,
    LoginAttempt,
    Refused,
    SignedIn,
    email_not_verified,
    invalid_credentials,
    locked_error,
    user_is_usable,
)
from stich.auth.principal import Principal
from stich.auth.repository import AuthRepository
from stich.auth.schemas import ApiKeyCreate, SessionOut
from stich.auth.useragent import mask_ip, parse_user_agent
from stich.crypto.tokens import KeyedHasher, TokenKind, new_token, token_kind
from stich.db.base import new_id
from stich.errors import Conflict, Forbidden, NotFound, StichError, Unauthorized
from stich.users.models import UserIdentity
from stich.users.repository import UserRepository
from stich.users.schemas import normalize_email

# -- the service -------------------------------------------------------------------------


class AuthService:
    def __init__(
        self,
        session: Session,
        meta: RequestMeta,
        policy: AuthPolicy,
        hasher: KeyedHasher,
    ) -> None:
        self.session = session
        self.meta = meta
        self.policy = policy
        self.hasher = hasher
        self.repo = AuthRepository(session)
        self.users = UserRepository(session)
        self.audit = AuditService(session, meta)

    # -- password sign-in: read phase, (password check outside), write phase -----------

    def email_hash(self, email: str) -> str:
        return self.hasher.hash(email, purpose="login-email")

    def start_login(self, raw_email: str) -> LoginAttempt:
        try:
            email: str | None = normalize_email(raw_email)
        except ValueError:
            email = None  # cannot belong to an account; throttled like any unknown email
        email_hash = self.email_hash(email or raw_email.strip().lower())
        # Both lookups run for every well-formed email, so both answers cost the same.
        user = self.users.by_email(email) if email is not None else None
        throttle = self.repo.throttle(email_hash)
        if user is not None:
            return LoginAttempt(email_hash, user.id, user.password_hash, user.locked_until)
        return LoginAttempt(
            email_hash, None, None, throttle.locked_until if throttle is not None else None
        )

    def finish_login(
        self,
        attempt: LoginAttempt,
        *,
        password_ok: bool,
        upgraded_hash: str | None,
        client: Client,
        anonymous_hash: str | None,
        now: datetime,
    ) -> SignedIn | Refused:
        retry_after = attempt.retry_after(now)
        if retry_after is not None:
            self._audit_login("auth.login_blocked", attempt, {"reason": "locked"})
            return Refused(locked_error(retry_after))
        if not password_ok or attempt.user_id is None:
            return self._login_failed(attempt, now)
        user = self.users.by_id(attempt.user_id)
        if (
            user is None
            or user.deleted_at is not None
            or not user.is_active
            # Changed since the check (a concurrent password change): not proven.
            or user.password_hash != attempt.password_hash
        ):
            return self._login_failed(attempt, now)
        if user.is_suspended:
            self._audit_login("auth.login_refused", attempt, {"reason": "suspended"})
            return Refused(Forbidden("this account is suspended", code="account_suspended"))
        if self.policy.require_verified_email == "always" and not user.email_verified:
            # The password was right, so this says nothing to someone who guessed.
            self._audit_login("auth.login_refused", attempt, {"reason": "email_not_verified"})
            return Refused(email_not_verified())
        if not self.users.clear_failures_unless_locked(user.id, now):
            # A concurrent failure locked the account while we checked the password.
            self._audit_login("auth.login_blocked", attempt, {"reason": "locked"})
            return Refused(locked_error(self._seconds_locked(user.id, now)))
        if upgraded_hash is not None:
            self.users.replace_password_hash(
                user.id, upgraded_hash, expected=attempt.password_hash, now=now, changed=False
            )
        issued = self.open_session(user.id, client, now)
        claimed = self.claim_anonymous(anonymous_hash, user.id, now)
        self.audit.record(
            "auth.login",
            actor=Principal.user(user.id, user.role, session_id=issued.session.id),
            resource_type="session",
            resource_id=issued.session.family_id,
            new={"method": "password", "rehashed": upgraded_hash is not None},
        )
        return SignedIn(user, issued, claimed)

    def _seconds_locked(self, user_id: str, now: datetime) -> int:
        until = self.users.locked_until(user_id)
        return max(1, math.ceil((until - now).total_seconds())) if until else 1

    def _login_failed(
        self,
        attempt: LoginAttempt,
        now: datetime,
        *,
        action: str = "auth.login_failed",
        refusal: StichError | None = None,
    ) -> Refused:
        """Count a wrong password towards lockout, audit it, and lock from the threshold."""
        if attempt.user_id is not None:
            failures = self.users.count_failure(attempt.user_id)
        else:
            failures = self.repo.count_unknown_failure(attempt.email_hash, now)
        self._audit_login(action, attempt, {"consecutive_failures": failures})
        lock = self.policy.lock_for(failures)
        if lock is None:
            return Refused(refusal or invalid_credentials())
        until = now + lock
        if attempt.user_id is not None:
            self.users.lock(attempt.user_id, until)
        else:
            self.repo.lock_unknown(attempt.email_hash, until)
        self._audit_login(
            "auth.locked",
            attempt,
            {"consecutive_failures": failures, "locked_until": until.isoformat()},
        )
        return Refused(locked_error(max(1, math.ceil(lock.total_seconds()))))

    def reauthentication_failed(self, principal: Principal, now: datetime) -> Refused:
        """A wrong current password (password change, account deletion) counts towards
        lockout like a failed sign-in: a stolen session must not become a way to guess
        the password without limit. Once locked, re-authentication is refused too
        (:func:`password_lock`), so the session cannot change the password or delete the
        account until the lock ends."""
        attempt = LoginAttempt(
            email_hash="", user_id=_uid(principal), password_hash=None, locked_until=None
        )
        wrong = Forbidden("the current password is incorrect", code="wrong_password")
        return self._login_failed(attempt, now, action="auth.reauth_failed", refusal=wrong)

    def _audit_login(self, action: str, attempt: LoginAttempt, details: dict[str, object]) -> None:
        new: dict[str, object] = dict(details)
        if attempt.user_id is None:
            # No account to file it under: keep the keyed email hash to correlate attempts.
            new["email_hash"] = attempt.email_hash
        self.audit.record(
            action,
            actor=None,
            subject_user_id=attempt.user_id,
            resource_type="user" if attempt.user_id else None,
            resource_id=attempt.user_id,
            new=new,
        )

    # -- sessions ----------------------------------------------------------------------

    def open_session(
        self,
        user_id: str,
        client: Client,
        now: datetime,
        *,
        family_id: str | None = None,
        signed_in_at: datetime | None = None,
    ) -> Issued:
        """A new session (or, with ``family_id``, the next one of a refreshed family).

        ``created_at`` is when the person signed in: a refresh carries it over, so the
        session list and the oldest-first eviction see sign-ins, not rotations.
        """
        access, refresh = new_token(TokenKind.ACCESS), new_token(TokenKind.REFRESH)
        device = parse_user_agent(client.user_agent)
        session_id = new_id()
        row = self.repo.add_session(
            UserSession(
                id=session_id,
                user_id=user_id,
                family_id=family_id or session_id,
                access_token_hash=self.hasher.token_hash(access),
                refresh_token_hash=self.hasher.token_hash(refresh),
                device_name=device.name,
                device_type=device.device_type,
                os=device.os,
                browser=device.browser,
                ip_hash=self.meta.ip_hash,
                ip_masked=mask_ip(client.ip),
                user_agent=client.user_agent[:512] if client.user_agent else None,
                access_expires_at=now + self.policy.access_ttl,
                expires_at=now + self.policy.refresh_ttl,
                last_used_at=now,
                created_at=signed_in_at or now,
            )
        )
        if family_id is None:
            self._evict_beyond_cap(user_id, now)
        return Issued(row, access, refresh)

    def _evict_beyond_cap(self, user_id: str, now: datetime) -> None:
        families = self.repo.families_beyond(user_id, self.policy.max_sessions, now)
        if not families:
            return
        evicted = self.repo.revoke_families(user_id, now, "evicted", only=families)
        self.audit.record(
            "auth.sessions_evicted",
            actor=None,
            subject_user_id=user_id,
            resource_type="session",
            new={"sessions": evicted, "limit": self.policy.max_sessions},
        )

    def refresh(self, refresh_token: str, client: Client, now: datetime) -> Issued | Refused:
        if token_kind(refresh_token) is not TokenKind.REFRESH:
            return Refused(Unauthorized("the refresh token is not valid", code="invalid_token"))
        digest = self.hasher.token_hash(refresh_token)
        retired = self.repo.rotate(digest, now)
        if retired is None:
            return self._refresh_refused(digest, now)
        if not user_is_usable(self.users.by_id(retired.user_id), now):
            # Raised, not Refused: the rotation above rolls back with it.
            raise Unauthorized("this account cannot sign in", code="account_unavailable")
        issued = self.open_session(
            retired.user_id,
            client,
            now,
            family_id=retired.family_id,
            signed_in_at=retired.created_at,
        )
        self.repo.mark_replaced(retired.id, issued.session.id)
        return issued

    def _refresh_refused(self, digest: str, now: datetime) -> Refused:
        row = self.repo.session_by_refresh_hash(digest)
        if row is None:
            return Refused(Unauthorized("the refresh token is not valid", code="invalid_token"))
        if row.revoked_reason == "rotated" and row.revoked_at is not None:
            if self.policy.reuse_grace and row.revoked_at > now - self.policy.reuse_grace:
                return Refused(
                    Unauthorized(
                        "this refresh token was just used; use the newest tokens",
                        code="refresh_token_used",
                    )
                )
            revoked = self.repo.revoke_whole_family(row.family_id, now, "reuse_detected")
            self.audit.record(
                "auth.refresh_reuse",
                actor=None,
                subject_user_id=row.user_id,
                resource_type="session",
                resource_id=row.family_id,
                new={"revoked_sessions": revoked},
            )
            return Refused(
                Unauthorized(
                    "this refresh token was already used, so the sign-in it belongs to has "
                    "been revoked as a precaution; sign in again",
                    code="refresh_token_reused",
                )
            )
        if row.revoked_at is not None:
            return Refused(Unauthorized("this session was revoked", code="token_revoked"))
        return Refused(Unauthorized("the refresh token has expired", code="token_expired"))

    def current_family(self, principal: Principal) -> str:
        if principal.session_id is None:
            raise Forbidden(
                "this needs a session token from sign-in, not an API key",
                code="session_required",
            )
        family = self.repo.family_of(principal.session_id)
        if family is None:
            raise Unauthorized("the session no longer exists", code="token_revoked")
        return family

    def logout(self, principal: Principal, now: datetime) -> None:
        family = self.current_family(principal)
        self.repo.revoke_families(_uid(principal), now, "logout", only=[family])
        self.audit.record(
            "auth.logout", actor=principal, resource_type="session", resource_id=family
        )

    def list_sessions(self, principal: Principal, now: datetime) -> list[SessionOut]:
        rows = self.repo.active_sessions(_uid(principal), now)
        return [
            SessionOut(
                id=row.family_id,
                current=row.id == principal.session_id,
                device_type=row.device_type,
                device_name=row.device_name,
                os=row.os,
                browser=row.browser,
                ip_masked=row.ip_masked,
                signed_in_at=row.created_at,
                last_used_at=row.last_used_at,
                expires_at=row.expires_at,
            )
            for row in rows
        ]

    def revoke_session(self, principal: Principal, session_id: str, now: datetime) -> None:
        """Revoke one of the principal's own sessions (by its stable id); others' are 404."""
        revoked = self.repo.revoke_families(_uid(principal), now, "revoked", only=[session_id])
        if not revoked:
            raise NotFound("no such active session", code="session_not_found")
        self.audit.record(
            "auth.session_revoked", actor=principal, resource_type="session", resource_id=session_id
        )

    def revoke_other_sessions(self, principal: Principal, now: datetime) -> int:
        keep = self.current_family(principal)
        revoked = self.repo.revoke_families(_uid(principal), now, "revoked", keep=keep)
        self.audit.record(
            "auth.sessions_revoked",
            actor=principal,
            resource_type="session",
            new={"sessions": revoked, "kept": keep},
        )
        return len(revoked)

    # -- API keys ----------------------------------------------------------------------

    def create_key(
        self, principal: Principal, data: ApiKeyCreate, now: datetime
    ) -> tuple[ApiKey, str]:
        user_id = _uid(principal)
        self.repo.lock_user(user_id)  # the cap holds under concurrent creates
        if self.repo.count_active_keys(user_id, now) >= self.policy.max_api_keys:
            raise Conflict(
                f"an account may have at most {self.policy.max_api_keys} active API keys; "
                "revoke one first",
                code="too_many_api_keys",
            )
        raw = new_token(TokenKind.API_KEY)
        expires_at = now + timedelta(days=data.expires_in_days) if data.expires_in_days else None
        key = self.repo.add_key(
            ApiKey(
                user_id=user_id,
                name=data.name,
                key_hash=self.hasher.token_hash(raw),
                preview=f"{raw[:13]}...{raw[-4:]}",
                scopes=[str(scope) for scope in data.scopes],
                expires_at=expires_at,
                created_at=now,
            )
        )
        self.audit.record(
            "auth.key_created",
            actor=principal,
            resource_type="api_key",
            resource_id=key.id,
            new={
                "name": key.name,
                "scopes": key.scopes,
                "expires_at": expires_at.isoformat() if expires_at else None,
            },
        )
        return key, raw

    def list_keys(self, principal: Principal, now: datetime) -> list[ApiKey]:
        return self.repo.active_keys(_uid(principal), now)

    def revoke_key(self, principal: Principal, key_id: str, now: datetime) -> None:
        key = self.repo.revoke_key(_uid(principal), key_id, now)
        if key is None:
            raise NotFound("no such API key", code="api_key_not_found")
        self.audit.record(
            "auth.key_revoked",
            actor=principal,
            resource_type="api_key",
            resource_id=key.id,
            old={"name": key.name, "preview": key.preview},
        )

    # -- anonymous owners --------------------------------------------------------------

    def issue_anonymous(self, now: datetime) -> str:
        token = mint_anonymous_token(self.hasher)
        self.repo.record_anonymous(self.hasher.token_hash(token), now)
        return token

    def claim_anonymous(self, owner_hash: str | None, user_id: str, now: datetime) -> int:
        """Move the anonymous owner's apps to the account, in the caller's transaction.

        Claiming is once only: the token is marked claimed (a conditional upsert) before
        anything moves, so a second claim, concurrent or later, moves nothing.
        """
        if owner_hash is None or not self.repo.claim_anonymous(owner_hash, user_id, now):
            return 0
        app_ids = self.repo.move_anonymous_apps(owner_hash, user_id)
        self.audit.record(
            "auth.anonymous_claimed",
            actor=Principal.anonymous(owner_hash),
            subject_user_id=user_id,
            resource_type="user",
            resource_id=user_id,
            new={"apps": len(app_ids), "app_ids": app_ids[:100]},
        )
        return len(app_ids)

    # -- linked identities ------------------------------------------------------------

    def list_identities(self, principal: Principal) -> list[UserIdentity]:
        return self.repo.identities_for(_uid(principal))

    def unlink_identity(self, principal: Principal, identity_id: str) -> None:
        """Remove a linked identity, unless it is the account's last way to sign in."""
        user_id = _uid(principal)
        user = self.users.by_id_for_update(user_id)  # serialise concurrent unlinks
        identities = self.repo.identities_for(user_id)
        target = next((i for i in identities if i.id == identity_id), None)
        if user is None or target is None:
            raise NotFound("no such linked identity", code="identity_not_found")
        if user.password_hash is None and len(identities) == 1:
            raise Conflict(
                "this is the account's only way to sign in; set a password or link another "
                "provider first",
                code="last_sign_in_method",
            )
        self.repo.delete_identity(target)
        self.audit.record(
            "auth.identity_unlinked",
            actor=principal,
            resource_type="identity",
            resource_id=target.id,
            old={"provider": target.provider.value},
        )


def _uid(principal: Principal) -> str:
    if principal.user_id is None:
        raise Unauthorized("this needs a signed-in account", code="unauthorized")
    return principal.user_id
