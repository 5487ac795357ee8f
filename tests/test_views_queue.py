"""The view queue: reads stay reads, the in-process buffer, and the Redis stream with a
consumer group (at least once, counted once)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event

from stich.analytics.queue import InProcessViewQueue, ingest_batch
from stich.analytics.redis_queue import GROUP, RedisViewConsumer, RedisViewQueue, decode_view
from stich.analytics.repository import NewView
from stich.analytics.service import ViewEvent, prepare_view
from stich.analytics.viewer import Viewer
from stich.api.app import create_app
from stich.apps.models import App
from stich.config import Settings
from stich.crypto.tokens import KeyedHasher
from stich.db import Database
from stich.log import configure_logging
from tests.conftest import TEST_SERVER_KEY, make_settings, redis_client_or_skip
from tests.factories import make_user
from tests.gallery_support import make_app

HASHER = KeyedHasher(TEST_SERVER_KEY.encode())
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
# Tests keep to a Redis database of their own, and a stream per test.
REDIS_URL = os.environ.get("STICH_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")


def _view_count(db: Database, app_id: str) -> int:
    with db.read("fresh") as uow:
        return uow.session.get_one(App, app_id).view_count


def _views(app_id: str, n: int, *, prefix: str = "198.51.100") -> list[NewView]:
    at = datetime.now(UTC)
    events = [
        ViewEvent(app_id, Viewer(client_ip=f"{prefix}.{i}", user_agent=FIREFOX), at)
        for i in range(n)
    ]
    return [v for e in events if (v := prepare_view(e, HASHER, 1800))]


# -- reads stay reads -------------------------------------------------------------------


def test_reading_an_app_opens_no_write_transaction(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    slow_flush = make_settings(settings.database_url, tmp_path, view_flush_ms=60_000)
    app_id = make_app(db, make_user(db).user_id)
    writes: list[object] = []

    def on_begin(connection: object) -> None:  # every write unit of work begins here
        writes.append(connection)

    event.listen(db.primary, "begin", on_begin)
    try:
        with TestClient(create_app(slow_flush, db)) as client:
            for _ in range(3):
                response = client.get(f"/api/apps/{app_id}", headers={"User-Agent": FIREFOX})
                assert response.status_code == 200
                assert response.json()["view_count"] == 0  # not yet: it is queued
            visitor = {"User-Agent": FIREFOX}
            assert client.post(f"/api/apps/{app_id}/views", headers=visitor).status_code == 202
            assert writes == []
            assert client.app.state.view_queue.backlog() == 4  # type: ignore[attr-defined]
    finally:
        event.remove(db.primary, "begin", on_begin)
    # Leaving the app (shutdown) flushed the buffer: one visitor, one window.
    assert _view_count(db, app_id) == 1


def test_shutdown_flushes_the_in_process_buffer(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    slow_flush = make_settings(settings.database_url, tmp_path, view_flush_ms=60_000)
    app_id = make_app(db, make_user(db).user_id)
    with TestClient(create_app(slow_flush, db)) as client:
        for i in range(25):
            visitor = {"User-Agent": FIREFOX, "X-Forwarded-For": f"203.0.113.{i}"}
            assert client.post(f"/api/apps/{app_id}/views", headers=visitor).status_code == 202
        assert _view_count(db, app_id) == 0
    assert _view_count(db, app_id) == 1  # no trusted proxy: one client address
    # The flusher thread counts on its own too, without a shutdown.
    quick = make_settings(settings.database_url, tmp_path, view_flush_ms=20)
    with TestClient(create_app(quick, db)) as client:
        client.get(f"/api/apps/{app_id}", headers={"User-Agent": FIREFOX + " other"})
        deadline = time.monotonic() + 10
        while _view_count(db, app_id) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert _view_count(db, app_id) == 2


def test_a_full_buffer_sheds_views_not_requests(db: Database, tmp_path: Path) -> None:
    small = make_settings(db.settings.database_url, tmp_path, view_buffer_size=100)
    app_id = make_app(db, make_user(db).user_id)
    queue = InProcessViewQueue(Database(small), HASHER)  # not started: nothing drains it
    accepted = [queue.put(view) for view in _views(app_id, 150)]
    assert accepted.count(True) == 100 and queue.stats.shed == 50
    assert queue.flush() == 100
    assert queue.backlog() == 0 and _view_count(db, app_id) == 100
    queue.db.dispose()


# -- Redis Streams ------------------------------------------------------------------------


@pytest.fixture
def redis_settings(settings: Settings, tmp_path: Path) -> Iterator[Settings]:
    client = redis_client_or_skip(REDIS_URL)
    stream = f"stich-test:{uuid.uuid4().hex}"
    yield make_settings(
        settings.database_url,
        tmp_path,
        view_queue_url=REDIS_URL,
        view_queue_stream=stream,
        view_flush_ms=50,
        view_claim_idle_seconds=1,
    )
    client.delete(stream)
    client.close()


def test_the_api_appends_and_a_consumer_counts(db: Database, redis_settings: Settings) -> None:
    app_id = make_app(db, make_user(db).user_id)
    with TestClient(create_app(redis_settings, db)) as client:
        for i in range(3):
            visitor = {"User-Agent": f"{FIREFOX} {i}"}
            assert client.get(f"/api/apps/{app_id}", headers=visitor).status_code == 200
        assert client.app.state.view_queue.backlog() == 3  # type: ignore[attr-defined]
    assert _view_count(db, app_id) == 0  # the API only appends
    consumer = RedisViewConsumer(db, HASHER, settings=redis_settings, name="c1")
    assert consumer.poll() == 3
    assert _view_count(db, app_id) == 3
    assert consumer.client.xlen(redis_settings.view_queue_stream) == 0  # acknowledged, gone
    consumer.close()


def test_a_dead_consumers_batch_is_taken_over_and_counted_once(
    db: Database, redis_settings: Settings
) -> None:
    app_id = make_app(db, make_user(db).user_id)
    producer = RedisViewQueue(redis_settings)
    for view in _views(app_id, 40):
        assert producer.put(view)
    # Consumer "a" reads the batch and commits it, then dies before acknowledging it.
    dead = RedisViewConsumer(db, HASHER, settings=redis_settings, name="a")
    dead.ensure_group()
    entries = dead._read(">", block_ms=None)
    assert (
        ingest_batch(db, redis_settings, HASHER, [decode_view(f[b"v"]) for _, f in entries]) == 40
    )
    assert _view_count(db, app_id) == 40
    pending = dead.client.xpending(redis_settings.view_queue_stream, GROUP)
    assert pending["pending"] == 40
    # Consumer "b" takes the idle entries over, counts them again (nothing new) and acks.
    time.sleep(1.1)
    survivor = RedisViewConsumer(db, HASHER, settings=redis_settings, name="b")
    assert survivor.poll() == 40
    assert survivor.stats.ingested == 40 and survivor.stats.counted == 0
    assert _view_count(db, app_id) == 40
    assert survivor.client.xpending(redis_settings.view_queue_stream, GROUP)["pending"] == 0
    for consumer in (producer, dead, survivor):
        consumer.close()


def test_an_unreachable_queue_sheds_the_view_and_the_request_succeeds(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    nowhere = make_settings(settings.database_url, tmp_path, view_queue_url="redis://127.0.0.1:1/0")
    app_id = make_app(db, make_user(db).user_id)
    with TestClient(create_app(nowhere, db)) as client:
        response = client.post(f"/api/apps/{app_id}/views", headers={"User-Agent": FIREFOX})
        assert (response.status_code, response.json()) == (202, {"queued": False})
        assert client.get(f"/api/apps/{app_id}").status_code == 200
        assert client.app.state.view_queue.stats.shed == 2  # type: ignore[attr-defined]


def test_stich_worker_consumes_and_stops_cleanly_on_sigterm(
    db: Database, redis_settings: Settings, tmp_path: Path
) -> None:
    app_id = make_app(db, make_user(db).user_id)
    producer = RedisViewQueue(redis_settings)
    env = dict(
        os.environ,
        STICH_DATABASE_URL=redis_settings.database_url,
        STICH_SERVER_KEY=TEST_SERVER_KEY,
        STICH_VIEW_QUEUE_URL=REDIS_URL,
        STICH_VIEW_QUEUE_STREAM=redis_settings.view_queue_stream,
        STICH_VIEW_FLUSH_MS="50",
        STICH_SERVER_KEY_FILE=str(tmp_path / "server.key"),
    )
    worker = subprocess.Popen(
        [sys.executable, "-m", "stich.cli", "worker", "--no-maintenance"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        for view in _views(app_id, 30):
            producer.put(view)
        deadline = time.monotonic() + 30
        while _view_count(db, app_id) < 30 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _view_count(db, app_id) == 30
        worker.send_signal(signal.SIGTERM)
        output, _ = worker.communicate(timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert worker.returncode == 0, output.decode()
    assert b"stopped" in output
    producer.close()


def test_metrics_report_the_queue(db: Database, settings: Settings, tmp_path: Path) -> None:
    watched = make_settings(
        settings.database_url, tmp_path, metrics_enabled=True, view_flush_ms=60_000
    )
    app_id = make_app(db, make_user(db).user_id)
    with TestClient(create_app(watched, db)) as client:
        client.post(f"/api/apps/{app_id}/views", headers={"User-Agent": FIREFOX})
        client.post(f"/api/apps/{app_id}/views", headers={"User-Agent": "curl/8.5.0"})  # a bot
        text = client.get("/metrics").text
    # One registry per process: other apps' queues of this test process add to the sums.
    assert "stich_views_backlog" in text and "stich_views_shed_total" in text
    queued = [line for line in text.splitlines() if line.startswith("stich_views_queued_total")]
    assert queued and float(queued[0].split()[-1]) >= 1


def test_a_failing_database_is_retried_with_back_off_not_in_a_loop(tmp_path: Path) -> None:
    # A database without tables: every batch fails, and the buffer stays full.
    broken = make_settings(
        f"sqlite:///{tmp_path / 'empty.db'}",
        tmp_path,
        view_batch_size=1,
        view_flush_ms=100,
        log_format="json",  # tracebacks cheap to write, so a retry loop would show
    )
    configure_logging(broken)
    broken_db = Database(broken)
    queue = InProcessViewQueue(broken_db, HASHER)
    for view in _views("some-app", 5):
        queue.put(view)
    try:
        queue.start()
        time.sleep(1.0)
        failures = queue.stats.failures
        queue.close()
    finally:
        broken_db.dispose()
        configure_logging(make_settings(broken.database_url, tmp_path))  # as tests log
    # Back-off doubles from the flush interval: 0.1 + 0.2 + 0.4 s fit in a second, so a
    # handful of tries (a loop without back-off made hundreds), and nothing was lost.
    assert 1 <= failures <= 8, failures
    assert queue.backlog() == 5 and queue.stats.shed == 0


def test_entries_queued_before_0009_still_decode() -> None:
    """A stream entry written by the previous version (seven fields, the user id fourth,
    the full 64-digit viewer key) decodes to the view as it is kept now."""
    at = datetime(2026, 12, 1, 12, tzinfo=UTC)
    old = json.dumps(["app-1", "ab" * 32, 1_764_590_400, "user-1", None, "mobile", at.isoformat()])
    view = decode_view(old)
    assert (view.app_id, view.viewer_key, view.window_start) == ("app-1", "ab" * 16, 1_764_590_400)
    assert (view.referrer_origin, view.device_type.value, view.viewed_at) == (None, "mobile", at)
    with pytest.raises(ValueError, match="not a queued view"):
        decode_view(json.dumps(["app-1", "ab", 1, "mobile", at.isoformat()]))  # five fields
