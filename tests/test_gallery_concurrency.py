"""Threads starring, unstarring, favoriting and viewing at once: no error reaches a user,
and afterwards every counter and rollup equals its recount."""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime, timedelta

from stich.analytics.recount import CHECKS
from stich.analytics.service import AnalyticsService
from stich.analytics.viewer import Viewer
from stich.auth.principal import Principal
from stich.crypto.tokens import KeyedHasher
from stich.db import Database
from stich.gallery.repository import Reaction
from stich.gallery.service import GalleryService
from tests.conftest import TEST_SERVER_KEY
from tests.factories import make_user
from tests.gallery_support import make_app

ROUNDS = 25
START = datetime(2026, 7, 1, 23, 50, tzinfo=UTC)  # the views straddle midnight


def test_concurrent_toggles_and_views_never_drift(db: Database) -> None:
    owner = make_user(db)
    fans = [make_user(db) for _ in range(3)]
    apps = [make_app(db, owner.user_id) for _ in range(2)]
    hasher = KeyedHasher(TEST_SERVER_KEY.encode())
    errors: list[BaseException] = []
    workers = 2 * len(fans) + 2
    barrier = threading.Barrier(workers)

    def toggle(user_id: str, seed: int) -> None:
        rng = random.Random(seed)
        barrier.wait()
        for _ in range(ROUNDS):
            try:
                with db.write() as uow:
                    GalleryService(uow.session).react(
                        rng.choice(list(Reaction)),
                        Principal.user(user_id),
                        rng.choice(apps),
                        on=rng.random() < 0.6,
                    )
            except BaseException as exc:
                errors.append(exc)

    def view(seed: int) -> None:
        rng = random.Random(seed)
        barrier.wait()
        for _ in range(ROUNDS):
            at = START + timedelta(minutes=rng.randrange(20))
            viewer = Viewer(client_ip=f"203.0.113.{rng.randrange(4)}", user_agent="Mozilla/5.0")
            try:
                with db.write() as uow:
                    AnalyticsService(uow.session, hasher, window_seconds=300).record_view(
                        None, rng.choice(apps), viewer, referrer="https://example.com/x", at=at
                    )
            except BaseException as exc:
                errors.append(exc)

    threads = [
        # Two threads per fan: the same account toggling the same apps at once.
        *(threading.Thread(target=toggle, args=(fan.user_id, n)) for n, fan in enumerate(fans * 2)),
        *(threading.Thread(target=view, args=(100 + n,)) for n in range(2)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []

    for check in CHECKS:
        with db.write() if check.needs_write else db.read() as uow:
            assert check.find(uow.session) == [], check.name
