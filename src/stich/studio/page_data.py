"""What the Studio's list and detail pages show beside sqladmin's rows, read in one unit of
work per page (sync: run in a thread). Lists get their extra columns with one query per
column for the whole page (owners, app counts, audit links), never one per row. Analytics
come from ``AnalyticsService.app_analytics``: the numbers the API gives for the period."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from markupsafe import Markup

from stich.analytics.service import AnalyticsPeriod, AnalyticsService, AppAnalytics
from stich.apps import state_machine
from stich.apps.models import App
from stich.audit.models import ActorType, AuditLog
from stich.auth.models import ApiKey, UserSession
from stich.auth.principal import Principal
from stich.auth.repository import AuthRepository
from stich.crypto.tokens import KeyedHasher
from stich.db import Database
from stich.db.base import utcnow
from stich.errors import StichError
from stich.studio.audit_diff import AuditDiff, audit_diff
from stich.studio.charts import bar_chart, daily_chart
from stich.studio.repository import AppRef, StudioRepository, UserRef
from stich.users.models import User

PAGE_LIST_LIMIT = 20  # forks, a user's apps, a user's audit events


@dataclass(frozen=True)
class ListedApp:
    app: App
    owner: UserRef | None  # None: an anonymous visitor's app (or a purged account's)


@dataclass(frozen=True)
class ListedUser:
    user: User
    app_count: int
    locked: bool


@dataclass(frozen=True)
class ListedEntry:
    entry: AuditLog
    actor: UserRef | None
    resource_page: str | None  # sqladmin identity of the resource's page, when it exists
    diff: AuditDiff


def listed_apps(database: Database, apps: Sequence[App]) -> list[ListedApp]:
    with database.read("fresh") as uow:
        owners = StudioRepository(uow.session).users_by_id(
            {app.user_id for app in apps if app.user_id is not None}
        )
    return [ListedApp(app, owners.get(app.user_id or "")) for app in apps]


def listed_users(database: Database, users: Sequence[User]) -> list[ListedUser]:
    now = utcnow()
    with database.read("fresh") as uow:
        counts = StudioRepository(uow.session).live_app_counts({user.id for user in users})
    return [
        ListedUser(
            user=user,
            app_count=counts.get(user.id, 0),
            locked=user.locked_until is not None and user.locked_until > now,
        )
        for user in users
    ]


_RESOURCE_PAGES = {"app": "app", "user": "user", "api_key": "api-key"}


def listed_entries(database: Database, entries: Sequence[AuditLog]) -> list[ListedEntry]:
    with database.read("fresh") as uow:
        return _listed_entries(StudioRepository(uow.session), entries)


def _listed_entries(repo: StudioRepository, entries: Sequence[AuditLog]) -> list[ListedEntry]:
    actors = repo.users_by_id({e.actor_id for e in entries if _by_account(e) and e.actor_id})
    existing: dict[str, set[str]] = {}
    for kind in _RESOURCE_PAGES:
        ids = {e.resource_id for e in entries if e.resource_type == kind and e.resource_id}
        existing[kind] = repo.existing_ids(kind, ids)
    return [
        ListedEntry(
            entry=entry,
            actor=actors.get(entry.actor_id or "") if _by_account(entry) else None,
            resource_page=(
                _RESOURCE_PAGES[kind]
                if (kind := entry.resource_type or "") in existing
                and entry.resource_id in existing[kind]
                else None
            ),
            diff=audit_diff(entry.old_values, entry.new_values),
        )
        for entry in entries
    ]


def _by_account(entry: AuditLog) -> bool:
    """Signed-in users and their API keys act as an account (``actor_id`` is its id)."""
    return entry.actor_type in (ActorType.USER, ActorType.API_KEY)


# -- an app's page -------------------------------------------------------------------------


@dataclass(frozen=True)
class AppFacts:
    ref: AppRef
    owner: UserRef | None
    is_featured: bool
    favorite_count: int
    framework: str | None
    version: int
    deployment_url: str | None
    deployment_status: str | None
    last_deployed_at: datetime | None
    updated_at: datetime
    next_statuses: list[str]


@dataclass(frozen=True)
class AppPage:
    facts: AppFacts
    period: AnalyticsPeriod
    analytics: AppAnalytics | None  # None for a deleted app: no reads see it
    charts: list[Markup]
    parent: AppRef | None
    forks: list[AppRef]
    fork_total: int


def app_page(
    database: Database, hasher: KeyedHasher, admin: Principal, app_id: str, period: AnalyticsPeriod
) -> AppPage | None:
    with database.read("fresh") as uow:
        repo = StudioRepository(uow.session)
        app = repo.app(app_id)
        ref = repo.app_ref(app_id)
        if app is None or ref is None:
            return None
        owner = repo.users_by_id([app.user_id]).get(app.user_id) if app.user_id else None
        facts = AppFacts(
            ref=ref,
            owner=owner,
            is_featured=app.is_featured,
            favorite_count=app.favorite_count,
            framework=app.framework,
            version=app.version,
            deployment_url=app.deployment_url,
            deployment_status=app.deployment_status,
            last_deployed_at=app.last_deployed_at,
            updated_at=app.updated_at,
            next_statuses=state_machine.allowed_next(app.status),
        )
        parent = repo.app_ref(app.parent_app_id) if app.parent_app_id else None
        forks, fork_total = repo.forks(app.id, PAGE_LIST_LIMIT)
        analytics: AppAnalytics | None = None
        if app.deleted_at is None:
            try:
                analytics = AnalyticsService(uow.session, hasher).app_analytics(
                    admin, app.id, period
                )
            except StichError:  # deleted between the two reads
                analytics = None
    return AppPage(
        facts=facts,
        period=period,
        analytics=analytics,
        charts=app_charts(analytics) if analytics is not None else [],
        parent=parent,
        forks=forks,
        fork_total=fork_total,
    )


def app_charts(analytics: AppAnalytics) -> list[Markup]:
    """The per-day chart and the breakdowns, exactly the service's numbers."""
    days = analytics.days
    return [
        daily_chart(
            f"Views, unique viewers and stars per day ({analytics.period.value})",
            [d.day for d in days],
            {
                "Views": [d.views for d in days],
                "Unique viewers": [d.unique_viewers for d in days],
                "Stars": [d.stars for d in days],
            },
            key="app-daily",
        ),
        bar_chart(
            "Top referrers",
            [(origin or "(direct)", n) for origin, n in analytics.top_referrers],
            key="app-referrers",
        ),
        bar_chart(
            "Devices",
            [(device.value, n) for device, n in analytics.devices],
            key="app-devices",
        ),
    ]


# -- a user's page -------------------------------------------------------------------------


@dataclass(frozen=True)
class SessionLine:
    """A live sign-in, by its family (the id the API and revocation use)."""

    family_id: str
    device_type: str
    device_name: str | None
    os: str | None
    browser: str | None
    ip_masked: str | None
    signed_in_at: datetime
    last_used_at: datetime | None
    expires_at: datetime


@dataclass(frozen=True)
class KeyLine:
    """An active API key: its name, preview and use, never its hash.

    The preview (the key's prefix and last four characters, what its owner sees in
    ``GET /api/keys``) is how a person tells keys apart; the key itself is never stored.
    """

    id: str
    name: str
    preview: str
    scopes: list[str]
    created_at: datetime
    last_used_at: datetime | None
    usage_count: int
    expires_at: datetime | None


@dataclass(frozen=True)
class UserPage:
    user_id: str
    display_name: str
    email: str
    username: str | None
    role: str
    provider: str
    email_verified: bool
    is_active: bool
    is_suspended: bool
    deleted_at: datetime | None
    failed_login_attempts: int
    locked_until: datetime | None
    locked: bool
    last_active_at: datetime | None
    created_at: datetime
    apps: list[AppRef]
    app_total: int
    sessions: list[SessionLine]
    keys: list[KeyLine]
    events: list[ListedEntry]


def user_page(database: Database, user_id: str) -> UserPage | None:
    now = utcnow()
    with database.read("fresh") as uow:
        repo = StudioRepository(uow.session)
        user = repo.account(user_id)
        if user is None:
            return None
        auth = AuthRepository(uow.session)
        apps, app_total = repo.apps_of(user.id, PAGE_LIST_LIMIT)
        sessions = _session_lines(auth.active_sessions(user.id, now))
        keys = [_key_line(key) for key in auth.active_keys(user.id, now)]
        return UserPage(
            user_id=user.id,
            display_name=user.display_name,
            email=user.email,
            username=user.username,
            role=user.role.value,
            provider=user.provider.value,
            email_verified=user.email_verified,
            is_active=user.is_active,
            is_suspended=user.is_suspended,
            deleted_at=user.deleted_at,
            failed_login_attempts=user.failed_login_attempts,
            locked_until=user.locked_until,
            locked=user.locked_until is not None and user.locked_until > now,
            last_active_at=user.last_active_at,
            created_at=user.created_at,
            apps=apps,
            app_total=app_total,
            sessions=sessions,
            keys=keys,
            events=_listed_entries(repo, repo.audit_about(user.id, PAGE_LIST_LIMIT)),
        )


def _session_lines(rows: Sequence[UserSession]) -> list[SessionLine]:
    """One line per family: its newest live row (refresh rotation adds rows)."""
    lines: dict[str, SessionLine] = {}
    for row in rows:  # newest first
        lines.setdefault(
            row.family_id,
            SessionLine(
                family_id=row.family_id,
                device_type=row.device_type.value,
                device_name=row.device_name,
                os=row.os,
                browser=row.browser,
                ip_masked=row.ip_masked,
                signed_in_at=row.created_at,
                last_used_at=row.last_used_at,
                expires_at=row.expires_at,
            ),
        )
    return list(lines.values())


def _key_line(key: ApiKey) -> KeyLine:
    return KeyLine(
        id=key.id,
        name=key.name,
        preview=key.preview,
        scopes=list(key.scopes),
        created_at=key.created_at,
        last_used_at=key.last_used_at,
        usage_count=key.usage_count,
        expires_at=key.expires_at,
    )
