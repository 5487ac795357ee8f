"""Views are queued by requests and counted in batches: tests flush the queue to see them."""

from __future__ import annotations

from datetime import datetime

from fastapi.testclient import TestClient
from sqlalchemy import update

from stich.analytics.service import AnalyticsService
from stich.analytics.viewer import Viewer
from stich.apps.models import App
from stich.auth.principal import Principal
from stich.crypto.tokens import KeyedHasher
from stich.db import Database
from stich.gallery.repository import Reaction
from stich.gallery.service import GalleryService
from tests.conftest import TEST_SERVER_KEY
from tests.factories import make_user
from tests.gallery_support import make_app


def flush_views(client: TestClient) -> int:
    """Count every view this app's process has queued, now; how many were new in this
    call (the flusher thread may have counted some already: assert on the counts)."""
    counted: int = client.app.state.view_queue.flush()  # type: ignore[attr-defined]
    return counted


def seed_activity(db: Database, at: datetime) -> tuple[str, str]:
    """An app with a fork, a star and a favorite, and three views at ``at`` from three
    visitors with one referrer: a little of every maintained count. (app id, fork id)."""
    alice, bob = make_user(db), make_user(db)
    app_id = make_app(db, alice.user_id, title="Counted", framework="react")
    fork = make_app(db, bob.user_id, title="Fork")
    with db.write() as uow:
        uow.session.execute(update(App).where(App.id == fork).values(parent_app_id=app_id))
        uow.session.execute(update(App).where(App.id == app_id).values(fork_count=1))
    with db.write() as uow:
        gallery = GalleryService(uow.session, clock=lambda: at)
        gallery.react(Reaction.STAR, Principal.user(bob.user_id), app_id, on=True)
        gallery.react(Reaction.FAVORITE, Principal.user(bob.user_id), app_id, on=True)
        analytics = AnalyticsService(uow.session, KeyedHasher(TEST_SERVER_KEY.encode()))
        for n in range(3):
            viewer = Viewer(client_ip=f"192.0.2.{n}", user_agent="Mozilla/5.0 (X11; Linux)")
            analytics.record_view(None, app_id, viewer, referrer="https://a.example/", at=at)
    return app_id, fork
