"""The rules for apps: who may do what, the lifecycle, forks, deletion and transfer.

Services never commit; the caller's unit of work does, once. Every method that changes
an app locks its row first (``FOR UPDATE`` on PostgreSQL; SQLite writers already hold
the write lock from ``BEGIN IMMEDIATE``), so checks and changes cannot interleave with a
concurrent request. Counters are the exception: they move with one atomic
``UPDATE ... SET n = n + 1``, so a popular parent is never a lock queue for its forks.

Fork counts count *live* forks: a fork's soft delete takes one off its parent's
``fork_count``, its restore puts it back, and its purge changes nothing (it was already
off). Purging a parent detaches its forks (``parent_app_id`` becomes NULL).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from stich.apps import state_machine
from stich.apps.models import App, AppStatus, Visibility
from stich.apps.query import AppQuery, AppRow, AppSort, SortDirection
from stich.apps.repository import AppRepository, PurgedBatch
from stich.apps.schemas import (
    AppCreate,
    AppDetail,
    AppUpdate,
    BulkStatusRequest,
    BulkStatusResponse,
    BulkStatusResult,
    ForkRequest,
    StatusChange,
)
from stich.apps.visibility import can_manage
from stich.audit.service import AuditService, RequestMeta
from stich.auth.principal import Principal, PrincipalKind
from stich.db.base import utcnow
from stich.db.pagination import Page
from stich.errors import Conflict, Forbidden, NotFound

DEFAULT_RETENTION = timedelta(days=30)
RESOURCE = "app"


def app_not_found() -> NotFound:
    return NotFound("no such app", code="app_not_found")


@dataclass(frozen=True)
class ListParams:
    """Filters, order and page of a list of apps (validated at the edge)."""

    status: AppStatus | None = None
    visibility: Visibility | None = None
    framework: str | None = None
    q: str | None = None
    sort: AppSort = AppSort.CREATED_AT
    order: SortDirection = SortDirection.DESC
    limit: int = 20
    cursor: str | None = None

    def apply(self, query: AppQuery) -> AppQuery:
        if self.status is not None:
            query = query.with_status(self.status)
        if self.visibility is not None:
            query = query.with_visibility(self.visibility)
        if self.framework is not None:
            query = query.with_framework(self.framework)
        if self.q:
            query = query.matching(self.q)
        return query.order_by(self.sort, self.order).page(limit=self.limit, cursor=self.cursor)


@dataclass(frozen=True)
class Transferred:
    app_id: str
    from_user_id: str | None
    to_user_id: str
    to_username: str | None


class AppService:
    def __init__(
        self,
        session: Session,
        meta: RequestMeta | None = None,
        *,
        retention: timedelta = DEFAULT_RETENTION,
    ) -> None:
        self.session = session
        self.repo = AppRepository(session)
        self.audit = AuditService(session, meta)
        self.retention = retention

    # -- create and read -----------------------------------------------------------------

    def create(self, principal: Principal, body: AppCreate) -> AppDetail:
        _check_may_publish(principal, body.visibility)
        app = App(
            title=body.title,
            description=body.description,
            icon=body.icon,
            original_prompt=body.original_prompt,
            framework=body.framework,
            blueprint=body.blueprint.as_json() if body.blueprint else None,
            visibility=body.visibility,
            status=AppStatus.DRAFT,
            version=1,
            **_owner_columns(principal),
        )
        self.repo.add(app)
        return self._detail(app)

    def get(self, principal: Principal | None, app_id: str) -> AppDetail:
        found = self.repo.find_visible_with_author(app_id, principal)
        if found is None:
            raise app_not_found()
        app, author = found
        return AppDetail(app=app, author=author)

    def my_apps(self, principal: Principal, params: ListParams) -> tuple[Page[AppRow], int]:
        query = params.apply(AppQuery.owned_by(principal))
        return query.fetch(self.session), query.count(self.session)

    def forks(self, principal: Principal | None, app_id: str, params: ListParams) -> Page[AppRow]:
        if self.repo.find_visible(app_id, principal) is None:
            raise app_not_found()
        query = params.apply(AppQuery.visible_to(principal).forks_of(app_id))
        return query.fetch(self.session)

    # -- edit ----------------------------------------------------------------------------

    def update(self, principal: Principal, app_id: str, body: AppUpdate) -> AppDetail:
        app = self._managed(principal, app_id)
        changes = body.changes()
        for name, value in changes.items():
            setattr(app, name, value)
        now = utcnow()
        if "screenshot_url" in changes:
            app.screenshot_updated_at = now
        app.updated_at = now  # even when the values sent equal the stored ones
        self.session.flush()
        return self._detail(app)

    def change_status(self, principal: Principal, app_id: str, body: StatusChange) -> AppDetail:
        app = self._managed(principal, app_id)
        state_machine.check_move(app.status, body.status, app_id=app.id)
        app.status = body.status
        if body.deployment is not None:
            app.deployment_url = body.deployment.url
            app.deployment_status = body.deployment.status
            app.deployment_metadata = body.deployment.metadata
            app.last_deployed_at = utcnow()
        app.updated_at = utcnow()
        self.session.flush()
        return self._detail(app)

    def set_visibility(self, principal: Principal, app_id: str, value: Visibility) -> AppDetail:
        app = self._managed(principal, app_id)
        if app.visibility is not value:
            _check_may_publish(principal, value)
            self._audit_change(principal, app, "app.visibility", "visibility", value.value)
            app.visibility = value
            app.updated_at = utcnow()
            self.session.flush()
        return self._detail(app)

    def set_archived(self, admin: Principal, app_id: str, archived: bool) -> AppDetail:
        app = self._as_admin(admin, app_id)
        if app.is_archived != archived:
            self._audit_change(admin, app, "app.archive", "is_archived", archived)
            app.is_archived = archived
            app.updated_at = utcnow()
            self.session.flush()
        return self._detail(app)

    def set_featured(self, admin: Principal, app_id: str, featured: bool) -> AppDetail:
        app = self._as_admin(admin, app_id)
        if app.is_featured != featured:
            self._audit_change(admin, app, "app.feature", "is_featured", featured)
            app.is_featured = featured
            app.updated_at = utcnow()
            self.session.flush()
        return self._detail(app)

    # -- forks ---------------------------------------------------------------------------

    def fork(self, principal: Principal, app_id: str, body: ForkRequest | None = None) -> AppDetail:
        """A private copy of an app the principal can see, one version on, owned by it."""
        parent = self.repo.find_visible(app_id, principal)
        if parent is None:
            raise app_not_found()
        # The final prompt is owner-only: a fork by someone else must not leak it.
        sees_everything = can_manage(parent, principal)
        fork = App(
            title=body.title if body and body.title else parent.title,
            description=parent.description,
            icon=parent.icon,
            original_prompt=parent.original_prompt,
            final_prompt=parent.final_prompt if sees_everything else None,
            blueprint=copy.deepcopy(parent.blueprint),
            framework=parent.framework,
            visibility=Visibility.PRIVATE,
            status=AppStatus.DRAFT,
            parent_app_id=parent.id,
            version=parent.version + 1,
            **_owner_columns(principal),
        )
        self.repo.add(fork)
        if not self.repo.add_to_fork_count(parent.id, +1):
            raise app_not_found()  # the parent vanished mid-request; nothing is kept
        return self._detail(fork)

    # -- delete, restore, purge ----------------------------------------------------------

    def delete(self, principal: Principal, app_id: str) -> None:
        app = self._managed(principal, app_id)
        app.deleted_at = utcnow()
        if app.parent_app_id is not None:
            self.repo.add_to_fork_count(app.parent_app_id, -1)
        self._audit(principal, app, "app.delete")
        self.session.flush()

    def restore(self, principal: Principal, app_id: str) -> AppDetail:
        app = self.repo.find_managed(app_id, principal, lock=True)
        if app is None:
            raise app_not_found()
        if app.deleted_at is None:
            raise Conflict("the app is not deleted", code="not_deleted")
        if app.deleted_at < utcnow() - self.retention:
            raise Conflict(
                "the app was deleted too long ago to restore",
                code="retention_expired",
                details={
                    "deleted_at": app.deleted_at.isoformat(),
                    "retention_days": self.retention.days,
                },
            )
        app.deleted_at = None
        app.updated_at = utcnow()
        if app.parent_app_id is not None:
            self.repo.add_to_fork_count(app.parent_app_id, +1)
        self._audit(principal, app, "app.restore")
        self.session.flush()
        return self._detail(app)

    def count_purgeable(self, cutoff: datetime) -> int:
        return self.repo.count_deleted_before(cutoff)

    def purge_batch(self, cutoff: datetime, batch_size: int) -> PurgedBatch:
        """Hard-delete up to ``batch_size`` apps soft-deleted before ``cutoff``.

        Run each batch in its own unit of work; an empty batch means done.
        """
        expired = self.repo.deleted_before(cutoff, batch_size)
        for app_id, owner_id in expired:
            self.audit.record(
                "app.purge",
                actor=None,
                subject_user_id=owner_id,
                resource_type=RESOURCE,
                resource_id=app_id,
            )
        return self.repo.purge([app_id for app_id, _ in expired])

    # -- transfer ------------------------------------------------------------------------

    def transfer(self, principal: Principal, app_id: str, to_user: str) -> Transferred:
        """Move an app to another active account, in the caller's one transaction."""
        app = self._managed(principal, app_id)
        target = self.repo.find_user(to_user, lock=True)
        if target is None:
            raise NotFound("no account has that username or id", code="user_not_found")
        if not target.is_active or target.is_suspended or target.deleted_at is not None:
            raise Conflict("the receiving account is not active", code="target_inactive")
        if app.user_id == target.id:
            raise Conflict("the app already belongs to that account", code="already_owner")
        from_user_id = app.user_id
        old_owner = {"user_id": from_user_id, "anonymous": app.anonymous_owner_hash is not None}
        new_owner = {"user_id": target.id, "anonymous": False}
        app.user_id = target.id
        app.anonymous_owner_hash = None  # an anonymous owner gives the app up entirely
        app.updated_at = utcnow()
        self.session.flush()  # the owner moves first; the audit rows below follow it
        # One entry in each account's trail (an anonymous giver has no account).
        for party in (from_user_id, target.id):
            if party is not None:
                self._audit(
                    principal, app, "app.transfer", subject=party, old=old_owner, new=new_owner
                )
        self.session.flush()
        return Transferred(
            app_id=app.id,
            from_user_id=from_user_id,
            to_user_id=target.id,
            to_username=target.username,
        )

    # -- bulk ----------------------------------------------------------------------------

    def bulk_status(self, principal: Principal, body: BulkStatusRequest) -> BulkStatusResponse:
        """All or nothing: every transition is checked before any is made."""
        found = {a.id: a for a in self.repo.find_visible_many(body.ids, principal, lock=True)}
        results = [
            self._bulk_check(principal, found.get(app_id), app_id, body.status)
            for app_id in body.ids
        ]
        if not all(result.ok for result in results):
            raise Conflict(
                "no app was changed: some transitions are not possible",
                code="bulk_rejected",
                details={
                    "results": [r.model_dump(mode="json", exclude_none=True) for r in results]
                },
            )
        now = utcnow()
        for app in found.values():
            app.status = body.status
            app.updated_at = now
        self.session.flush()
        return BulkStatusResponse(updated=len(results), results=results)

    @staticmethod
    def _bulk_check(
        principal: Principal, app: App | None, app_id: str, target: AppStatus
    ) -> BulkStatusResult:
        if app is None:
            return BulkStatusResult(id=app_id, ok=False, error="app_not_found")
        if not can_manage(app, principal):
            return BulkStatusResult(id=app_id, ok=False, error="not_owner")
        if not state_machine.can_move(app.status, target):
            return BulkStatusResult(
                id=app_id,
                ok=False,
                error="invalid_transition",
                from_status=app.status,
                allowed=list(state_machine.TRANSITIONS[app.status]),
            )
        return BulkStatusResult(id=app_id, ok=True, from_status=app.status, to_status=target)

    # -- helpers -------------------------------------------------------------------------

    def _managed(self, principal: Principal, app_id: str) -> App:
        """The live app, locked, if the principal may change it.

        Invisible apps are 404; visible apps of someone else (public ones) are 403.
        """
        app = self.repo.find_visible(app_id, principal, lock=True)
        if app is None:
            raise app_not_found()
        if not can_manage(app, principal):
            raise Forbidden("only the app's owner can do this", code="not_owner")
        return app

    def _as_admin(self, admin: Principal, app_id: str) -> App:
        if not admin.is_admin:
            raise Forbidden("this needs an admin account", code="admin_required")
        return self._managed(admin, app_id)

    def _detail(self, app: App) -> AppDetail:
        return AppDetail(app=app, author=self.repo.author(app.user_id))

    def _audit(
        self,
        actor: Principal,
        app: App,
        action: str,
        *,
        subject: str | None = None,
        old: dict[str, Any] | None = None,
        new: dict[str, Any] | None = None,
    ) -> None:
        self.audit.record(
            action,
            actor=actor,
            subject_user_id=subject if subject is not None else app.user_id,
            resource_type=RESOURCE,
            resource_id=app.id,
            old=old,
            new=new,
        )

    def _audit_change(self, actor: Principal, app: App, action: str, field: str, new: Any) -> None:
        old = getattr(app, field)
        self._audit(
            actor,
            app,
            action,
            old={field: old.value if isinstance(old, Visibility) else old},
            new={field: new},
        )


def _check_may_publish(principal: Principal, visibility: Visibility) -> None:
    """STICH_REQUIRE_VERIFIED_EMAIL=publish: an unverified account keeps its apps unlisted
    or private (the principal says; see stich.auth.dependencies)."""
    if visibility is Visibility.PUBLIC and not principal.may_publish:
        raise Forbidden(
            "confirm your email address before making an app public "
            "(POST /api/auth/email/verify/request sends a new link)",
            code="email_not_verified",
        )


def _owner_columns(principal: Principal) -> dict[str, str | None]:
    if principal.kind is PrincipalKind.ANONYMOUS:
        return {"user_id": None, "anonymous_owner_hash": principal.anonymous_owner_hash}
    return {"user_id": principal.user_id, "anonymous_owner_hash": None}
