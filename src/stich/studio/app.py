"""Mounting the Studio: at /admin in the API app (``STICH_STUDIO_ENABLED``) or on its own
(``stich studio``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqladmin import Admin
from sqladmin.authentication import login_required
from sqlalchemy import Engine, event
from sqlalchemy.orm import Session, sessionmaker
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from stich.analytics.redis_queue import RedisViewQueue
from stich.api.middleware import RequestMiddleware
from stich.api.request_limits import request_guards
from stich.config import Settings
from stich.crypto.tokens import KeyedHasher
from stich.db import Database
from stich.studio.auth import StudioAuth
from stich.studio.dashboard import DashboardPage
from stich.studio.views import StudioContext, bind_views

BASE_URL = "/admin"
TITLE = "Stich Studio"
TEMPLATES = Path(__file__).parent / "templates"


class StudioReadOnlyError(RuntimeError):
    """sqladmin's own session tried to write; Studio edits go through the services."""


class StudioConsole(Admin):
    """sqladmin with the dashboard as its home page."""

    dashboard: DashboardPage

    @login_required
    async def index(self, request: Request) -> Response:
        return await self.dashboard.render(request, self.templates)


def mount_studio(app: Starlette, settings: Settings, database: Database) -> Admin:
    """Add the Studio to ``app`` at /admin."""
    context = StudioContext(database, settings, KeyedHasher(settings.server_key_bytes()))
    auth = StudioAuth(settings, database, cookie_path=BASE_URL)
    admin = StudioConsole(
        app,
        session_maker=read_only_sessions(database),
        base_url=BASE_URL,
        title=TITLE,
        templates_dir=str(TEMPLATES),
        authentication_backend=auth,
    )
    auth.templates = admin.templates
    # The API app's view queue (absent when the Studio serves alone without Redis).
    admin.dashboard = DashboardPage(
        database,
        lambda: getattr(app.state, "view_queue", None),
        past_seconds=settings.feed_ranking_refresh_seconds,
    )
    for view in bind_views(context):
        admin.add_view(view)
    return admin


def create_studio_app(settings: Settings, database: Database | None = None) -> Starlette:
    """The Studio alone (``stich studio``): /admin, with the access log and request ids."""
    owns_database = database is None
    db = database or Database(settings)
    # With a Redis view queue the dashboard can read its backlog from here too (the
    # in-process queue lives in the API processes, out of this one's sight).
    queue = RedisViewQueue(settings) if settings.view_queue_url else None

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        yield
        if queue is not None:
            queue.close()
        if owns_database:
            db.dispose()

    async def to_studio(_request: Request) -> RedirectResponse:
        return RedirectResponse(f"{BASE_URL}/", status_code=307)

    app = Starlette(
        routes=[Route("/", to_studio)],
        middleware=[Middleware(RequestMiddleware), *request_guards(settings)],
        lifespan=lifespan,
    )
    app.state.view_queue = queue
    mount_studio(app, settings, db)
    return app


def read_only_sessions(database: Database) -> sessionmaker[Session]:
    """Sessions for sqladmin's list and detail pages: primary reads, writes refused.

    Reads go to the primary (admins fix what they see, so it must be current); on
    PostgreSQL the transaction is READ ONLY as well.
    """
    bind: Engine = database.primary
    if database.backend == "postgresql":
        bind = bind.execution_options(postgresql_readonly=True)
    sessions = sessionmaker(bind=bind, expire_on_commit=False)
    event.listen(sessions, "before_flush", _refuse_flush)
    return sessions


def _refuse_flush(session: Session, _context: Any, _instances: Any) -> None:
    raise StudioReadOnlyError("the Studio's table views are read-only")
