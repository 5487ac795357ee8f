"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI

from stich import __version__
from stich.analytics import endpoints as analytics_endpoints
from stich.api import health
from stich.api.docs import document_in_router_order, install_docs
from stich.api.errors import install_error_handlers
from stich.api.inputs import install_input_contract
from stich.api.middleware import RequestMiddleware, install_cors
from stich.api.ratelimit import RateLimitMiddleware
from stich.api.reads import read_executor, reads_never_wait
from stich.api.request_limits import RequestLimitsMiddleware
from stich.apps import endpoints as apps_endpoints
from stich.audit import endpoints as audit_endpoints
from stich.auth import email_endpoints
from stich.auth import endpoints as auth_endpoints
from stich.config import Environment, Settings, load_settings
from stich.crypto.tokens import KeyedHasher
from stich.db import Database
from stich.gallery import endpoints as gallery_endpoints
from stich.log import configure_logging
from stich.observability.install import install_observability
from stich.secrets import endpoints as secrets_endpoints
from stich.users import endpoints as users_endpoints
from stich.worker import Background

# Domain routers mounted under /api, in the order they appear in the OpenAPI document.
API_ROUTERS: list[APIRouter] = [
    auth_endpoints.router,
    email_endpoints.router,
    users_endpoints.router,
    gallery_endpoints.router,
    apps_endpoints.router,
    analytics_endpoints.router,
    secrets_endpoints.router,
    audit_endpoints.router,
]
# ... and the order requests are matched in. FastAPI tries the included routers one by one,
# every route of each, so the routers of the busiest reads (the feed, an app's page) go
# first: about 0.15 ms a request (docs/benchmarks.md, HTTP). No path of theirs is also a
# path of a router they now precede, so every request still finds the same route. The
# gallery stays before apps so /apps/public is not taken for an app id.
MATCH_ORDER: list[APIRouter] = [
    gallery_endpoints.router,
    apps_endpoints.router,
    analytics_endpoints.router,
    auth_endpoints.router,
    email_endpoints.router,
    users_endpoints.router,
    secrets_endpoints.router,
    audit_endpoints.router,
]


def create_app(settings: Settings | None = None, database: Database | None = None) -> FastAPI:
    settings = settings or load_settings()
    configure_logging(settings)
    owns_database = database is None
    database = database or Database(settings)

    hasher = KeyedHasher(settings.server_key_bytes())
    background = Background(database, hasher, settings)  # the view queue, maybe the worker

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        background.start()
        yield
        background.stop()  # flushes this process's queued views
        if owns_database:
            database.dispose()

    app = FastAPI(
        title="Stich",
        version=__version__,
        description="Data layer of an AI app-generation platform.",
        lifespan=lifespan,
        docs_url=None,  # served by install_docs from local assets, not a CDN
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.database = database
    app.state.hasher = hasher
    app.state.view_queue = background.view_queue
    app.state.inline_reads = reads_never_wait(database, settings)  # see stich.api.reads
    app.state.read_executor = read_executor(settings)
    install_error_handlers(app)
    install_input_contract(app)  # before the routers: they copy its URL check
    if settings.rate_limit_enabled:  # inside the request-limits, which bound what it reads
        app.add_middleware(RateLimitMiddleware, settings=settings, hasher=hasher)
    app.add_middleware(
        RequestLimitsMiddleware,
        max_body_bytes=settings.max_body_bytes,
        max_query_string_bytes=settings.max_query_string_bytes,
    )
    app.add_middleware(RequestMiddleware, statements_header=settings.env is Environment.DEVELOPMENT)
    app.include_router(health.router)
    # Each router straight onto the app (not through an /api router): a nested include
    # is matched level by level on every request (docs/benchmarks.md, HTTP).
    for router in MATCH_ORDER:
        app.include_router(router, prefix="/api")
    document_in_router_order(app, API_ROUTERS, prefix="/api")
    install_observability(app, settings, database)  # /metrics, Sentry, OpenTelemetry
    if settings.studio_enabled:
        from stich.studio import mount_studio  # sqladmin is imported only when wanted

        mount_studio(app, settings, database)
    install_docs(app)
    install_cors(app, settings.cors_origins)  # last: the outermost middleware
    return app
