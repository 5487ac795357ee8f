"""Imports every model so ``Base.metadata`` holds the whole schema (Alembic, tests)."""

from stich.analytics.models import AppDailyStats, AppDailyViewer, AppView
from stich.apps.models import App
from stich.audit.models import AuditLog
from stich.auth.models import ApiKey, OAuthState, UserSession
from stich.db.base import Base
from stich.gallery.models import Favorite, Star
from stich.maintenance.models import MaintenanceJobRun
from stich.secrets.models import UserSecret
from stich.users.models import User, UserIdentity

metadata = Base.metadata

__all__ = [
    "ApiKey",
    "App",
    "AppDailyStats",
    "AppDailyViewer",
    "AppView",
    "AuditLog",
    "Base",
    "Favorite",
    "MaintenanceJobRun",
    "OAuthState",
    "Star",
    "User",
    "UserIdentity",
    "UserSecret",
    "UserSession",
    "metadata",
]
