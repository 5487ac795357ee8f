"""Set-based view ingest against the semantics it must keep, on both backends.

An oracle written from the rules alone (once per viewer per window, never bots, only apps
in the gallery, a viewer unique once per app and day, breakdowns by the first view of each
window) is compared with what the database holds after the one-at-a-time path and after
the batch path, with batches split anywhere and delivered twice.
"""

from __future__ import annotations

import itertools
import threading
from collections import Counter
from datetime import UTC, date, datetime, timedelta

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from stich.analytics.models import AppDailyBreakdown, AppDailyStats
from stich.analytics.repository import NewView
from stich.analytics.service import AnalyticsService, ViewEvent, prepare_view
from stich.analytics.viewer import Viewer, device_type, referrer_origin, viewer_key, window_start
from stich.apps.models import App, Visibility
from stich.auth.models import DeviceType
from stich.crypto.tokens import KeyedHasher
from stich.db import Database
from stich.db.instrumentation import track_queries
from tests.conftest import TEST_SERVER_KEY
from tests.factories import make_user
from tests.gallery_support import make_app

HASHER = KeyedHasher(TEST_SERVER_KEY.encode())
WINDOW = 1800
T0 = datetime(2026, 8, 3, 22, 0, tzinfo=UTC)  # two hours before UTC midnight
AGENTS = [
    "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile/15E148 Safari/604.1",
    "Googlebot/2.1 (+http://www.google.com/bot.html)",
]
REFERRERS = [None, "https://news.example/item?id=1", "http://localhost:5173/x"]

State = tuple[dict[str, int], dict[tuple[str, date], tuple[int, int]], Counter[tuple[str, ...]]]

event_specs = st.lists(
    st.tuples(
        st.integers(0, 2),  # app: two public, one private
        st.integers(0, 3),  # viewer: 0-1 accounts, 2-3 visitors by address
        st.integers(0, 2),  # user agent (2 is a bot)
        st.integers(0, 4 * 60),  # minutes after T0 (crosses midnight)
        st.integers(0, 2),  # referrer
    ),
    min_size=2,
    max_size=30,
)
# Cases the rules turn on, always tried: one visitor in two windows of a day (unique once),
# across midnight (unique on each day), a bot, a private app, a repeat in its window.
KNOWN_CASES = [
    (0, 2, 0, 0, 0),
    (0, 2, 0, 100, 1),
    (0, 2, 0, 130, 2),
    (0, 2, 0, 10, 1),
    (1, 0, 1, 5, 0),
    (1, 0, 2, 5, 0),
    (2, 1, 0, 5, 0),
]


def _events(
    specs: list[tuple[int, int, int, int, int]], apps: list[str], users: list[str]
) -> list[ViewEvent]:
    events = []
    for app, who, agent, minutes, ref in specs:
        if who < 2:
            viewer = Viewer(user_id=users[who], user_agent=AGENTS[agent])
        else:
            viewer = Viewer(client_ip=f"198.51.100.{who}", user_agent=AGENTS[agent])
        at = T0 + timedelta(minutes=minutes)
        events.append(ViewEvent(apps[app], viewer, at, REFERRERS[ref]))
    return events


def _oracle(events: list[ViewEvent], listed: set[str]) -> State:
    """What the rules say the counters and rollups must be."""
    first: dict[tuple[str, str, int], ViewEvent] = {}
    for event in events:
        if device_type(event.viewer.user_agent) is DeviceType.BOT or event.app_id not in listed:
            continue
        day = event.at.date()
        key = viewer_key(HASHER, event.viewer, app_id=event.app_id, day=day)
        first.setdefault((event.app_id, key, window_start(event.at, WINDOW)), event)
    counts: Counter[str] = Counter(app for app, _, _ in first)
    views: Counter[tuple[str, date]] = Counter()
    viewers: dict[tuple[str, date], set[str]] = {}
    breakdowns: Counter[tuple[str, ...]] = Counter()
    for (app, key, window), event in first.items():
        day = datetime.fromtimestamp(window, UTC).date()
        views[(app, day)] += 1
        viewers.setdefault((app, day), set()).add(key)
        origin = referrer_origin(event.referrer) or ""
        breakdowns[(app, day.isoformat(), "referrer", origin)] += 1
        device = device_type(event.viewer.user_agent).value
        breakdowns[(app, day.isoformat(), "device", device)] += 1
    daily = {slot: (n, len(viewers[slot])) for slot, n in views.items()}
    return dict(counts), daily, breakdowns


def _stored(db: Database, apps: list[str]) -> State:
    with db.read("fresh") as uow:
        s = uow.session
        counts = {
            app_id: n
            for app_id, n in s.execute(select(App.id, App.view_count).where(App.id.in_(apps)))
            if n
        }
        daily = {
            (r.app_id, r.day): (r.views, r.unique_viewers)
            for r in s.execute(
                select(AppDailyStats).where(AppDailyStats.app_id.in_(apps))
            ).scalars()
            if r.views
        }
        breakdowns: Counter[tuple[str, ...]] = Counter()
        rows = s.execute(select(AppDailyBreakdown).where(AppDailyBreakdown.app_id.in_(apps)))
        for r in rows.scalars():
            breakdowns[(r.app_id, r.day.isoformat(), r.dimension.value, r.value)] += r.views
    return counts, daily, breakdowns


def _world(db: Database) -> tuple[list[str], list[str], set[str]]:
    owner = make_user(db)
    apps = [make_app(db, owner.user_id), make_app(db, owner.user_id)]
    apps.append(make_app(db, owner.user_id, visibility=Visibility.PRIVATE))
    users = [make_user(db).user_id, make_user(db).user_id]
    return apps, users, set(apps[:2])


def _ingest(db: Database, views: list[NewView]) -> int:
    with db.write() as uow:
        return AnalyticsService(uow.session, HASHER, window_seconds=WINDOW).ingest(views)


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(specs=event_specs, cuts=st.lists(st.integers(1, 30), max_size=4))
@example(specs=KNOWN_CASES, cuts=[2, 5])
def _property(db: Database, specs: list[tuple[int, int, int, int, int]], cuts: list[int]) -> None:
    # One at a time, each in its own transaction: the path a request took before the queue.
    apps, users, listed = _world(db)
    events = _events(specs, apps, users)
    for event in events:
        with db.write() as uow:
            AnalyticsService(uow.session, HASHER, window_seconds=WINDOW).record_views([event])
    assert _stored(db, apps) == _oracle(events, listed)

    # In batches cut anywhere, every batch delivered twice (at least once delivery).
    apps, users, listed = _world(db)
    events = _events(specs, apps, users)
    views = [v for e in events if (v := prepare_view(e, HASHER, WINDOW))]
    bounds = sorted({0, len(views), *(c for c in cuts if c < len(views))})
    for start, end in itertools.pairwise(bounds):
        _ingest(db, views[start:end])
        assert _ingest(db, views[start:end]) == 0  # the redelivery counts nothing
    assert _stored(db, apps) == _oracle(events, listed)


def test_batches_count_exactly_what_one_at_a_time_counts(db: Database) -> None:
    _property(db)


def test_a_batch_costs_the_same_statements_whatever_its_size(db: Database) -> None:
    apps, _, _ = _world(db)
    costs = []
    for size in (10, 1000):
        events = [
            ViewEvent(
                apps[i % 2],
                Viewer(client_ip=f"203.0.{size}.{i}", user_agent=AGENTS[i % 2]),
                T0 + timedelta(minutes=i % 200),
                REFERRERS[i % 3],
            )
            for i in range(size)
        ]
        views = [v for e in events if (v := prepare_view(e, HASHER, WINDOW))]
        with db.write() as uow, track_queries() as stats:
            service = AnalyticsService(uow.session, HASHER, window_seconds=WINDOW)
            assert service.ingest(views) == size
        costs.append(stats.statements)
    assert costs[0] == costs[1] <= 6, costs  # the five statements (+ SQLite's BEGIN)


def test_concurrent_deliveries_of_one_batch_count_it_once(db: Database) -> None:
    apps, users, listed = _world(db)
    specs = [(i % 3, i % 5, i % 3, (7 * i) % 240, i % 3) for i in range(60)]
    events = _events(specs, apps, users)
    views = [v for e in events if (v := prepare_view(e, HASHER, WINDOW))]
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def deliver(batch: list[NewView]) -> None:
        try:
            barrier.wait()
            _ingest(db, batch)
        except BaseException as exc:
            errors.append(exc)

    # Four workers at once, two with the batch in reverse order (another lock order).
    batches = [views, views[::-1], views, views[::-1]]
    threads = [threading.Thread(target=deliver, args=(b,)) for b in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert _stored(db, apps) == _oracle(events, listed)
