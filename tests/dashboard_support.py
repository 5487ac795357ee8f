"""A small platform with history, for the Studio dashboard tests (HTTP and browser), and
reading back what a dashboard page plots."""

from __future__ import annotations

import random
import re
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import select

from stich.analytics.service import AnalyticsPeriod, AnalyticsService, ViewEvent
from stich.analytics.viewer import Viewer
from stich.apps.models import App, AppStatus, Visibility
from stich.auth.models import ApiKey, DeviceType, UserSession
from stich.auth.principal import Principal
from stich.crypto.tokens import TokenKind, new_token
from stich.db import Database
from stich.gallery.feed import FeedRequest
from stich.gallery.repository import Reaction
from stich.gallery.service import GalleryService
from stich.gallery.sorts import FeedSort
from stich.users.models import Role, User
from tests.factories import hasher

BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36"


@dataclass(frozen=True)
class Platform:
    now: datetime
    user_ids: list[str]
    app_ids: list[str]  # the public, listed ones (in the gallery)
    private_app_id: str


def seed_platform(db: Database, now: datetime) -> Platform:
    """Users who signed up on several days, apps (public and private) created on several
    days, and views and stars spread over the last weeks, all through the services."""
    today = now.date()

    def at(days_ago: int, hour: int = 10) -> datetime:
        return now.replace(hour=hour, minute=0, second=0, microsecond=0) - timedelta(days=days_ago)

    with db.write() as uow:
        users = [
            User(
                email=f"dash{i}@example.test",
                username=f"dash{i}",
                display_name=f"Dash Person {i}",
                created_at=at(days_ago),
                updated_at=at(days_ago),
            )
            for i, days_ago in enumerate([0, 1, 1, 4, 12, 45, 80, 200])
        ]
        uow.session.add_all(users)
        uow.session.flush()
        owner = users[0].id
        apps = []
        for title, days_ago, visibility, status in [
            ("Tide Tables", 1, Visibility.PUBLIC, AppStatus.READY),
            ("Pocket Ledger", 3, Visibility.PUBLIC, AppStatus.DEPLOYED),
            ("Quiet Kanban", 40, Visibility.PUBLIC, AppStatus.READY),
            ("Secret Draft", 2, Visibility.PRIVATE, AppStatus.DRAFT),
        ]:
            app = App(
                title=title,
                user_id=owner,
                visibility=visibility,
                status=status,
                created_at=at(days_ago, 9),
                updated_at=at(days_ago, 9),
            )
            uow.session.add(app)
            apps.append(app)
        uow.session.flush()
        user_ids = [u.id for u in users]
        public_ids = [a.id for a in apps[:3]]
        private_id = apps[3].id

    # Views: app k gets (k + 1) * n views on days_ago n, from distinct viewers.
    events = []
    for k, app_id in enumerate(public_ids):
        for days_ago in (0, 1, 5, 20, 60):
            for v in range((k + 1) * (days_ago % 4 + 1)):
                viewer = Viewer(client_ip=f"10.{k}.{days_ago}.{v}", user_agent=BROWSER)
                events.append(ViewEvent(app_id, viewer, at(days_ago, 11), referrer=None))
    with db.write() as uow:
        AnalyticsService(uow.session, hasher).record_views(events)
    # Stars: user i stars app (i % 3) on day i.
    for i, user_id in enumerate(user_ids):
        moment = at(i * 3 % 50, 12)
        with db.write() as uow:
            GalleryService(uow.session, clock=lambda m=moment: m).react(
                Reaction.STAR, Principal.user(user_id), public_ids[i % 3], on=True
            )
    assert today == now.date()
    return Platform(now, user_ids, public_ids, private_id)


def expected_series(db: Database, platform: Platform, days: int) -> dict[str, dict[date, int]]:
    """What the API and the tables say for the ``days`` days ending today, per series."""
    today = platform.now.date()
    start = today - timedelta(days=days - 1)
    period = AnalyticsPeriod.MONTH if days == 30 else AnalyticsPeriod.QUARTER
    admin = Principal.user("x", Role.ADMIN)
    views: Counter[date] = Counter()
    stars: Counter[date] = Counter()
    with db.read() as uow:
        analytics = AnalyticsService(uow.session, hasher, clock=lambda: platform.now)
        for app_id in [*platform.app_ids, platform.private_app_id]:
            for row in analytics.app_analytics(admin, app_id, period, today=today).days:
                views[row.day] += row.views
                stars[row.day] += row.stars
        signups = Counter(
            created.date() for created in uow.session.scalars(select(User.created_at))
        )
        created = Counter(c.date() for c in uow.session.scalars(select(App.created_at)))
        gallery = GalleryService(uow.session, clock=lambda: platform.now)
        listed = gallery.feed(FeedRequest(sort=FeedSort.RECENT, limit=100), None).items
        published = Counter(row.created_at.date() for row in listed)
    span = [start + timedelta(days=i) for i in range(days)]
    return {
        name: {day: counts.get(day, 0) for day in span}
        for name, counts in {
            "Sign-ups": signups,
            "Apps created": created,
            "Apps published": published,
            "Views": views,
            "Stars": stars,
        }.items()
    }


def plotted(page: str) -> dict[str, dict[date, int]]:
    """Every series drawn on a dashboard page: ``{series label: {day: value}}``."""
    series: dict[str, dict[date, int]] = {}
    for label, body in re.findall(
        r'<g class="chart-series" data-series="([^"]+)">(.*?)</g>', page, re.S
    ):
        points = re.findall(r'data-day="([\d-]+)" data-value="(\d+)"', body)  # points or columns
        series[label] = {date.fromisoformat(d): int(v) for d, v in points}
    return series


_PEOPLE = (
    "Ada Lovelace",
    "Grace Hopper",
    "Alan Turing",
    "Katherine Johnson",
    "Linus Torvalds",
    "Margaret Hamilton",
    "Dennis Ritchie",
    "Barbara Liskov",
    "Ken Thompson",
    "Radia Perlman",
    "Guido van Rossum",
    "Frances Allen",
    "Donald Knuth",
    "Hedy Lamarr",
    "Tim Berners-Lee",
    "Sophie Wilson",
    "Edsger Dijkstra",
    "Anita Borg",
    "John McCarthy",
    "Jean Sammet",
)
_TITLES = (
    ("Tide Tables", "react"),
    ("Pocket Ledger", "vue"),
    ("Quiet Kanban", "svelte"),
    ("Neon Habit Tracker", "nextjs"),
    ("Recipe Box", "react"),
    ("Chess Clock", "vanilla"),
    ("Travel Map", "astro"),
    ("Flashcards for Students", "solid"),
    ("Budget Planner", "react"),
    ("Workout Log", "vue"),
    ("Photo Wall", "svelte"),
    ("Markdown Notes", "angular"),
)
_AGENTS = (
    BROWSER,
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
    "Mozilla/5.0 (iPad; CPU OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
)
_REFERRERS = (None, "https://news.ycombinator.com/item?id=1", "https://x.com/someone", None)


def seed_showcase(db: Database, now: datetime) -> Platform:
    """A livelier platform for screenshots: people signing up over 90 days, a dozen apps
    with views every day (several devices and referrers) and stars, through the services."""
    noon = now.replace(hour=12, minute=0, second=0, microsecond=0)
    with db.write() as uow:
        users = []
        for i, name in enumerate(_PEOPLE):
            joined = noon - timedelta(days=(i * 37) % 90, hours=i % 5)
            slug = name.lower().replace(" ", "").replace("-", "")[:20]
            users.append(
                User(
                    email=f"{slug}@example.test",
                    username=slug,
                    display_name=name,
                    email_verified=i % 3 != 0,
                    created_at=joined,
                    updated_at=joined,
                )
            )
        uow.session.add_all(users)
        uow.session.flush()
        apps = []
        oldest_first = sorted(users, key=lambda user: user.created_at)
        for k, (title, framework) in enumerate(_TITLES):
            created = noon - timedelta(days=(k * 23) % 85 + 1)
            # An owner who had joined by then.
            owner = next(u for u in oldest_first[k % 5 :] if u.created_at <= created)
            app = App(
                title=title,
                description=f"A {framework} app generated from a one-line prompt.",
                framework=framework,
                user_id=owner.id,
                visibility=Visibility.PUBLIC if k % 4 != 3 else Visibility.PRIVATE,
                status=AppStatus.DEPLOYED if k % 3 == 0 else AppStatus.READY,
                blueprint={"pages": k % 4 + 1, "components": ["header", "list"]},
                created_at=created,
                updated_at=created,
            )
            uow.session.add(app)
            apps.append(app)
        uow.session.flush()
        user_ids = [u.id for u in users]
        public = [(a.id, a.created_at) for a in apps if a.visibility is Visibility.PUBLIC]
        private_id = next(a.id for a in apps if a.visibility is Visibility.PRIVATE)
    events = []
    for k, (app_id, created) in enumerate(public):
        age = (noon - created).days
        for days_ago in range(age + 1):
            # Busier lately and at weekends, with a steady (seeded) wobble.
            wobble = random.Random(k * 1000 + days_ago).uniform(0.6, 1.4)
            weekend = 1.5 if (now.date() - timedelta(days=days_ago)).weekday() >= 5 else 1.0
            count = int((3 + k * 2) * wobble * weekend * (1 + 3 / (1 + days_ago / 8)))
            for v in range(count):
                viewer = Viewer(client_ip=f"10.{k}.{days_ago}.{v}", user_agent=_AGENTS[(v + k) % 3])
                moment = noon - timedelta(days=days_ago, minutes=v)
                referrer = _REFERRERS[(v * k) % 4]
                events.append(ViewEvent(app_id, viewer, moment, referrer))
                if v % 3 == 0:  # back an hour later: another view, not another viewer
                    events.append(ViewEvent(app_id, viewer, moment + timedelta(hours=1), referrer))
    with db.write() as uow:
        AnalyticsService(uow.session, hasher).record_views(events)
    for i, user_id in enumerate(user_ids):
        for j in range(i % 4 + 1):
            app_id, created = public[(i + j * 3) % len(public)]
            moment = max(created, noon - timedelta(days=(i * 5 + j * 11) % 60))
            with db.write() as uow:
                GalleryService(uow.session, clock=lambda m=moment: m).react(
                    Reaction.STAR, Principal.user(user_id), app_id, on=True
                )
    oldest_first = [app_id for app_id, _ in sorted(public, key=lambda pair: pair[1])]
    owner = _owner_of(db, oldest_first[0])
    _sign_in_places(db, owner, noon)
    return Platform(now, [owner, *(u for u in user_ids if u != owner)], oldest_first, private_id)


def _owner_of(db: Database, app_id: str) -> str:
    with db.read() as uow:
        owner = uow.session.scalar(select(App.user_id).where(App.id == app_id))
    assert owner is not None
    return owner


def _sign_in_places(db: Database, user_id: str, noon: datetime) -> None:
    """Two live sessions (a laptop and a phone) and an API key, as the API would store them."""
    with db.write() as uow:
        for device, os_name, browser_name, hours in (
            (DeviceType.DESKTOP, "Linux", "Chrome", 3),
            (DeviceType.MOBILE, "iOS", "Safari", 30),
        ):
            uow.session.add(
                UserSession(
                    user_id=user_id,
                    family_id=str(uuid.uuid4()),
                    access_token_hash=hasher.token_hash(new_token(TokenKind.ACCESS)),
                    refresh_token_hash=hasher.token_hash(new_token(TokenKind.REFRESH)),
                    device_type=device,
                    os=os_name,
                    browser=browser_name,
                    ip_masked="203.0.113.0/24",
                    created_at=noon - timedelta(hours=hours * 3),
                    last_used_at=noon - timedelta(hours=hours),
                    access_expires_at=noon + timedelta(minutes=15),
                    expires_at=noon + timedelta(days=30),
                )
            )
        key = new_token(TokenKind.API_KEY)
        uow.session.add(
            ApiKey(
                user_id=user_id,
                name="deploy bot",
                key_hash=hasher.token_hash(key),
                preview=f"{key[:13]}...{key[-4:]}",  # as AuthService makes it
                scopes=["apps:read", "apps:write"],
                usage_count=42,
                last_used_at=noon - timedelta(hours=2),
            )
        )
