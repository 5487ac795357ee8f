"""Sentry (extra ``stich[sentry]``), enabled by ``STICH_SENTRY_DSN`` alone.

Sentry's SQLAlchemy integration listens on the ``Engine`` class, so every engine of the
process is traced — the primary, the SQLite read pool and each replica — with the node's
host and port on each span. Statements are recorded with placeholders, never parameters,
and Sentry's default of sending no personal data (IP addresses, cookies, Authorization
headers) is left alone.
"""

from __future__ import annotations

from typing import Any

from stich import __version__
from stich.config import Settings, SettingsError


def init_sentry(settings: Settings, *, transport: Any = None) -> None:
    """Start the Sentry client; ``transport`` replaces the network (tests)."""
    if settings.sentry_dsn is None:
        return
    try:
        import sentry_sdk
        from sentry_sdk.integrations.fastapi import FastApiIntegration
        from sentry_sdk.integrations.sqlalchemy import SqlalchemyIntegration
        from sentry_sdk.integrations.starlette import StarletteIntegration
    except ImportError:
        raise SettingsError(
            "STICH_SENTRY_DSN is set but sentry-sdk is not installed: pip install 'stich[sentry]'"
        ) from None
    sentry_sdk.init(
        dsn=settings.sentry_dsn.get_secret_value(),
        environment=settings.env.value,
        release=f"stich@{__version__}",
        traces_sample_rate=settings.sentry_traces_sample_rate,
        integrations=[StarletteIntegration(), FastApiIntegration(), SqlalchemyIntegration()],
        transport=transport,
    )
