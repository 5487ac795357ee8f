"""Signing in to the Studio with a Stich admin account.

The sign-in is Stich's own password sign-in (``AuthService``: argon2id verification,
lockout after repeated failures, audit entries), refused for accounts that are not
admins before any session is opened. A successful sign-in opens an ordinary Stich
session, so it appears in the admin's ``GET /api/auth/sessions`` and can be revoked there;
the Studio cookie (signed with a key derived from the server key, ``SameSite=Strict``,
``Secure`` in production) carries only that session's id and a CSRF token. Every Studio
request re-checks, on the primary, that the session is live and its account is still an
active, unsuspended admin, and that the sign-in is younger than ``STICH_STUDIO_SESSION_HOURS``.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import anyio.to_thread
from sqladmin.authentication import AuthenticationBackend
from sqladmin.templating import Jinja2Templates
from starlette.requests import Request
from starlette.responses import Response

from stich.api.context import RequestState, client_ip
from stich.audit.service import AuditService, RequestMeta
from stich.auth.outcomes import AuthPolicy, Client, Refused, user_is_usable
from stich.auth.principal import Principal
from stich.auth.service import AuthService
from stich.config import Environment, Settings
from stich.crypto.passwords import PASSWORD_MAX_LENGTH, passwords_for
from stich.crypto.tokens import KeyedHasher
from stich.db import Database
from stich.db.base import utcnow
from stich.studio.repository import StudioRepository
from stich.users.models import Role

COOKIE_NAME = "stich_studio"
_SESSION_KEY = "studio"
_EMAIL_MAX_LENGTH = 320
NOT_ADMIN = "Stich Studio is for admin accounts only."


@dataclass(frozen=True)
class StudioAdmin:
    """The admin signed in to the Studio for this request."""

    user_id: str
    email: str
    session_id: str
    csrf_token: str

    @property
    def principal(self) -> Principal:
        return Principal.user(self.user_id, Role.ADMIN, session_id=self.session_id)


def current_admin(request: Request) -> StudioAdmin:
    """The signed-in admin (authentication has run before any Studio page or action)."""
    admin: StudioAdmin | None = getattr(request.state, "studio_admin", None)
    if admin is None:
        raise PermissionError("no Studio admin on this request")
    return admin


def request_meta(request: Request, settings: Settings, hasher: KeyedHasher) -> RequestMeta:
    """Audit metadata for a Studio request: keyed IP hash, user agent, request id."""
    ip = client_ip(request, settings.trusted_proxies)
    state: RequestState | None = getattr(request.state, "stich", None)
    agent = request.headers.get("user-agent")
    return RequestMeta(
        ip_hash=hasher.ip_hash(ip) if ip else None,
        user_agent=agent[:512] if agent else None,
        request_id=state.request_id if state is not None else None,
    )


class StudioAuth(AuthenticationBackend):
    def __init__(self, settings: Settings, database: Database, *, cookie_path: str) -> None:
        self.settings = settings
        self.database = database
        self.hasher = KeyedHasher(settings.server_key_bytes())
        self.lifetime = timedelta(hours=settings.studio_session_hours)
        self.templates: Jinja2Templates | None = None  # set once the Admin exists
        super().__init__(
            secret_key=self.hasher.hash("cookie", purpose="studio-session"),
            session_cookie=COOKIE_NAME,
            max_age=int(self.lifetime.total_seconds()),
            path=cookie_path,
            same_site="strict",
            https_only=settings.env is Environment.PRODUCTION,
        )

    # -- sqladmin hooks --------------------------------------------------------------

    async def login(self, request: Request) -> Response | bool:
        form = await request.form()
        email = str(form.get("username") or "")[:_EMAIL_MAX_LENGTH]
        password = str(form.get("password") or "")[:PASSWORD_MAX_LENGTH]
        client = Client(
            ip=client_ip(request, self.settings.trusted_proxies),
            user_agent=request.headers.get("user-agent"),
        )
        meta = request_meta(request, self.settings, self.hasher)
        outcome = await anyio.to_thread.run_sync(self._sign_in, email, password, client, meta)
        if isinstance(outcome, str):
            return await self._refused(request, outcome)
        request.session.clear()
        request.session[_SESSION_KEY] = {
            "session_id": outcome.session_id,
            "csrf": secrets.token_urlsafe(32),
        }
        return True

    async def authenticate(self, request: Request) -> Response | bool:
        stored = request.session.get(_SESSION_KEY)
        if not isinstance(stored, dict) or not isinstance(stored.get("session_id"), str):
            return False
        admin = await anyio.to_thread.run_sync(
            self._signed_in_admin, stored["session_id"], str(stored.get("csrf", ""))
        )
        if admin is None:
            request.session.pop(_SESSION_KEY, None)
            return False
        request.state.studio_admin = admin
        return True

    async def get_user_id(self, request: Request) -> Any:
        admin: StudioAdmin | None = getattr(request.state, "studio_admin", None)
        return admin.user_id if admin is not None else None

    async def logout(self, request: Request) -> Response | bool:
        stored = request.session.get(_SESSION_KEY)
        request.session.clear()
        if isinstance(stored, dict) and isinstance(stored.get("session_id"), str):
            meta = request_meta(request, self.settings, self.hasher)
            await anyio.to_thread.run_sync(self._sign_out, stored["session_id"], meta)
        return False  # back to the sign-in page

    # -- the work, on a worker thread ------------------------------------------------

    def _service(self, uow_session: Any, meta: RequestMeta) -> AuthService:
        return AuthService(uow_session, meta, AuthPolicy.from_settings(self.settings), self.hasher)

    def _sign_in(
        self, email: str, password: str, client: Client, meta: RequestMeta
    ) -> _SignedIn | str:
        """Stich's password sign-in, for admins only; a string is the reason it failed."""
        passwords = passwords_for(self.settings)
        with self.database.read("fresh") as uow:
            attempt = self._service(uow.session, meta).start_login(email)
            account = StudioRepository(uow.session).account(attempt.user_id or "")
            is_admin = account is not None and account.role is Role.ADMIN
        password_ok = passwords.verify(attempt.password_hash, password)
        if password_ok and not is_admin:
            self._record_refusal(attempt.user_id, meta)
            return NOT_ADMIN
        upgraded = None
        if password_ok and attempt.password_hash and passwords.needs_rehash(attempt.password_hash):
            upgraded = passwords.hash(password)
        with self.database.write() as uow:
            result = self._service(uow.session, meta).finish_login(
                attempt,
                password_ok=password_ok,
                upgraded_hash=upgraded,
                client=client,
                anonymous_hash=None,
                now=utcnow(),
            )
        if isinstance(result, Refused):
            return result.error.message
        return _SignedIn(session_id=result.issued.session.id)

    def _record_refusal(self, user_id: str | None, meta: RequestMeta) -> None:
        with self.database.write() as uow:
            AuditService(uow.session, meta).record(
                "studio.login_refused",
                actor=None,
                subject_user_id=user_id,
                resource_type="user",
                resource_id=user_id,
                new={"reason": "not_admin"},
            )

    def _signed_in_admin(self, session_id: str, csrf_token: str) -> StudioAdmin | None:
        if not csrf_token:
            return None
        now = utcnow()
        with self.database.read("fresh") as uow:
            found = StudioRepository(uow.session).session_with_user(session_id)
            if found is None:
                return None
            session, user = found
            live = (
                session.revoked_at is None
                and session.expires_at > now
                and session.created_at > now - self.lifetime
            )
            if not live or not user_is_usable(user, now) or user.role is not Role.ADMIN:
                return None
            return StudioAdmin(
                user_id=user.id, email=user.email, session_id=session.id, csrf_token=csrf_token
            )

    def _sign_out(self, session_id: str, meta: RequestMeta) -> None:
        with self.database.read("fresh") as uow:
            found = StudioRepository(uow.session).session_with_user(session_id)
            if found is None or found[0].revoked_at is not None:
                return
            principal = Principal.user(found[1].id, found[1].role, session_id=session_id)
        with self.database.write() as uow:
            self._service(uow.session, meta).logout(principal, utcnow())

    async def _refused(self, request: Request, message: str) -> Response:
        assert self.templates is not None, "StudioAuth.templates is set by mount_studio"
        return await self.templates.TemplateResponse(
            request, "sqladmin/login.html", {"error": message}, status_code=400
        )


@dataclass(frozen=True)
class _SignedIn:
    session_id: str
