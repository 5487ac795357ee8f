"""Deterministic, realistic datasets for benchmarks and demos.

Everything derives from one seeded random generator, so the same scale gives the same
data on every machine. Events (views, stars, favorites, forks) are generated first and
the counters and daily rollups are computed from them, so the written data is consistent
by construction (`stich db verify` finds no drift). Rows go in through bulk inserts in
large batches: the hot path of a seed is the driver, not the ORM.
"""

from __future__ import annotations

import bisect
import itertools
import random
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import Table, insert
from sqlalchemy.orm import Session

from stich.analytics.models import (
    VIEWER_KEY_LENGTH,
    AppDailyBreakdown,
    AppDailyStats,
    AppDailyViewer,
    AppView,
    BreakdownDimension,
)
from stich.apps.models import App, AppStatus, Visibility
from stich.auth.models import DeviceType
from stich.crypto.tokens import KeyedHasher
from stich.gallery.models import Favorite, Star
from stich.users.models import User

# The password of every seeded account, so `stich bench` can measure login.
SEED_PASSWORD = "stich-bench-password"  # noqa: S105 (a documented fixture, not a secret)
FRAMEWORKS = ("react", "vue", "svelte", "nextjs", "astro", "solid", "angular", "vanilla")
EVENT_DAYS = 120
APP_DAYS = 365
VIEW_WINDOW_SECONDS = 30 * 60
BATCH = 5_000


class Scale(StrEnum):
    TINY = "tiny"  # for tests: a few seconds on either backend
    DEMO = "demo"
    SMALL = "small"
    MEDIUM = "medium"
    LARGE = "large"


@dataclass(frozen=True)
class ScaleSpec:
    users: int
    apps: int
    views: int
    stars: int


SCALES: dict[Scale, ScaleSpec] = {
    Scale.TINY: ScaleSpec(users=60, apps=400, views=4_000, stars=800),
    Scale.DEMO: ScaleSpec(users=8, apps=40, views=3_000, stars=120),
    Scale.SMALL: ScaleSpec(users=2_000, apps=10_000, views=100_000, stars=20_000),
    Scale.MEDIUM: ScaleSpec(users=20_000, apps=100_000, views=2_000_000, stars=300_000),
    Scale.LARGE: ScaleSpec(users=50_000, apps=250_000, views=10_000_000, stars=1_000_000),
}

_SYLLABLES = ("ka", "lo", "mi", "ra", "ne", "to", "vi", "su", "da", "ri", "po", "ze", "an")
_ADJECTIVES = ("Tiny", "Cosy", "Swift", "Quiet", "Bright", "Neon", "Pocket", "Lazy", "Smart")
_NOUNS = (
    "Todo List",
    "Weather Board",
    "Recipe Box",
    "Habit Tracker",
    "Pomodoro Timer",
    "Budget Planner",
    "Chess Clock",
    "Flashcards",
    "Kanban Board",
    "Markdown Notes",
    "Photo Wall",
    "Quiz Maker",
    "Workout Log",
    "Travel Map",
    "Invoice Tool",
    "Chat Room",
)
_TOPICS = (
    "with dark mode",
    "for families",
    "for teams",
    "with offline support",
    "in one page",
    "with charts",
    "with keyboard shortcuts",
    "for students",
    "with sharing",
)


@dataclass
class SeedReport:
    users: int = 0
    apps: int = 0
    views: int = 0
    stars: int = 0
    favorites: int = 0
    daily_rows: int = 0
    breakdown_rows: int = 0


Progress = Callable[[str, int], None]
# (app id, day, dimension, value) -> views, as app_daily_breakdowns keeps them.
Breakdowns = Counter[tuple[str, date, BreakdownDimension, str]]


def _seeded_id(rng: random.Random, moment: datetime) -> str:
    """A UUIDv7 whose time part is ``moment`` and whose random part comes from ``rng``."""
    ms = int(moment.timestamp() * 1000)
    value = (ms << 80) | (0x7 << 76) | (rng.getrandbits(12) << 64) | (0b10 << 62)
    value |= rng.getrandbits(62)
    return str(uuid.UUID(int=value))


class Zipf:
    """Sample indexes 0..n-1 with probability proportional to 1 / (rank + 1) ** s."""

    def __init__(self, n: int, s: float, rng: random.Random) -> None:
        weights = [1.0 / (rank + 1) ** s for rank in range(n)]
        self._cumulative = list(itertools.accumulate(weights))
        self._total = self._cumulative[-1]
        self._rng = rng

    def sample(self) -> int:
        return bisect.bisect_left(self._cumulative, self._rng.random() * self._total)


def _name(rng: random.Random) -> str:
    return "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 3))).capitalize()


def _batches(rows: Sequence[dict[str, Any]] | Iterator[dict[str, Any]]) -> Iterator[list[Any]]:
    iterator = iter(rows)
    while chunk := list(itertools.islice(iterator, BATCH)):
        yield chunk


def _insert(session: Session, table: Table, rows: list[dict[str, Any]], progress: Progress) -> None:
    for chunk in _batches(rows):
        session.execute(insert(table), chunk)
        progress(table.name, len(chunk))


def generate(
    session: Session,
    scale: Scale,
    hasher: KeyedHasher,
    password_hash: str,
    *,
    seed: int = 42,
    now: datetime | None = None,
    progress: Progress = lambda _table, _n: None,
) -> SeedReport:
    """Write a whole dataset through ``session`` (the caller's unit of work commits)."""
    spec = SCALES[scale]
    rng = random.Random(seed)  # noqa: S311 (reproducible test data, not security)
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    report = SeedReport()

    users = _users(rng, spec, now, password_hash)
    _insert(session, User.__table__, users, progress)  # type: ignore[arg-type]
    report.users = len(users)

    apps = _apps(rng, spec, now, [u["id"] for u in users], hasher)
    public = [i for i, a in enumerate(apps) if _publicly_visible(a)]
    popularity = list(public)
    rng.shuffle(popularity)  # hot apps are random public apps, not the oldest
    zipf = Zipf(len(popularity), 1.1, rng)

    views, daily, breakdowns = _views(rng, spec, now, apps, popularity, zipf, hasher)
    stars, favorites = _stars(rng, spec, now, apps, popularity, zipf, users)
    for star in stars:
        day = star["created_at"].date()
        daily[(star["app_id"], day)]["stars"] += 1

    by_id = {a["id"]: a for a in apps}
    for counter_name, rows in (("view_count", views), ("star_count", stars)):
        for app_id, n in Counter(r["app_id"] for r in rows).items():
            by_id[app_id][counter_name] = n
    for app_id, n in Counter(f["app_id"] for f in favorites).items():
        by_id[app_id]["favorite_count"] = n
    forks = Counter(a["parent_app_id"] for a in apps if a["parent_app_id"] and not a["deleted_at"])
    for app_id, n in forks.items():
        by_id[app_id]["fork_count"] = n

    _insert(session, App.__table__, apps, progress)  # type: ignore[arg-type]
    _insert(session, AppView.__table__, views, progress)  # type: ignore[arg-type]
    # Who viewed which app on which day: the rows unique_viewers counts.
    viewers = sorted({(v["viewed_at"].date(), v["app_id"], v["viewer_key"]) for v in views})
    viewer_rows = [{"day": d, "app_id": a, "viewer_key": k} for d, a, k in viewers]
    _insert(session, AppDailyViewer.__table__, viewer_rows, progress)  # type: ignore[arg-type]
    _insert(session, Star.__table__, stars, progress)  # type: ignore[arg-type]
    _insert(session, Favorite.__table__, favorites, progress)  # type: ignore[arg-type]
    daily_rows = [
        {"app_id": app_id, "day": day, **counts} for (app_id, day), counts in daily.items()
    ]
    _insert(session, AppDailyStats.__table__, daily_rows, progress)  # type: ignore[arg-type]
    breakdown_rows = [
        {"app_id": app_id, "day": day, "dimension": dimension, "value": value, "views": n}
        for (app_id, day, dimension, value), n in breakdowns.items()
    ]
    _insert(session, AppDailyBreakdown.__table__, breakdown_rows, progress)  # type: ignore[arg-type]
    report.breakdown_rows = len(breakdown_rows)
    report.apps, report.views, report.stars = len(apps), len(views), len(stars)
    report.favorites, report.daily_rows = len(favorites), len(daily_rows)
    return report


def planned_rows(scale: Scale) -> int:
    """Roughly how many rows a scale writes (for a progress bar's total)."""
    spec = SCALES[scale]
    return spec.users + spec.apps + spec.views + spec.stars * 4 // 3 + spec.views // 3


def _users(
    rng: random.Random, spec: ScaleSpec, now: datetime, password_hash: str
) -> list[dict[str, Any]]:
    rows = []
    for i in range(spec.users):
        created = now - timedelta(seconds=rng.randint(86_400, APP_DAYS * 86_400))
        name = _name(rng)
        rows.append(
            {
                "id": _seeded_id(rng, created),
                "email": f"user{i}@seed.stich.test",
                "username": f"{name.lower()}{i}",
                "display_name": f"{name} {_name(rng)}",
                "avatar_url": f"https://avatars.example.test/{i}.png",
                "provider": "email",
                "email_verified": True,
                "password_hash": password_hash,
                "failed_login_attempts": 0,
                "preferences": {},
                "theme": "system",
                "timezone": "UTC",
                "role": "user",
                "is_active": True,
                "is_suspended": False,
                "created_at": created,
                "updated_at": created,
            }
        )
    return rows


def _apps(
    rng: random.Random,
    spec: ScaleSpec,
    now: datetime,
    user_ids: list[str],
    hasher: KeyedHasher,
) -> list[dict[str, Any]]:
    owners = Zipf(len(user_ids), 0.8, rng)
    statuses = [AppStatus.READY] * 14 + [AppStatus.DEPLOYED] * 2 + [AppStatus.DRAFT] * 2
    statuses += [AppStatus.GENERATING, AppStatus.ERROR]
    times = sorted(
        now - timedelta(seconds=rng.randint(3_600, APP_DAYS * 86_400)) for _ in range(spec.apps)
    )
    rows: list[dict[str, Any]] = []
    for created in times:
        anonymous = rng.random() < 0.05
        parent = rows[rng.randrange(len(rows))] if rows and rng.random() < 0.05 else None
        status = rng.choice(statuses)
        title = f"{rng.choice(_ADJECTIVES)} {rng.choice(_NOUNS)}"
        updated = min(now, created + timedelta(seconds=rng.randint(0, 30 * 86_400)))
        rows.append(
            {
                "id": _seeded_id(rng, created),
                "title": title,
                "description": f"A {title.lower()} {rng.choice(_TOPICS)}.",
                "original_prompt": f"Build me a {title.lower()}",
                "final_prompt": f"Build a {title.lower()} {rng.choice(_TOPICS)}",
                "blueprint": {"pages": rng.randint(1, 6)},
                "framework": rng.choice(FRAMEWORKS),
                "user_id": None if anonymous else user_ids[owners.sample()],
                "anonymous_owner_hash": (
                    hasher.hash(f"seed-anon-{len(rows)}", purpose="token") if anonymous else None
                ),
                "visibility": Visibility.PUBLIC if rng.random() < 0.6 else Visibility.PRIVATE,
                "status": status,
                "deployment_url": (
                    f"https://app{len(rows)}.example.test" if status == AppStatus.DEPLOYED else None
                ),
                "last_deployed_at": updated if status == AppStatus.DEPLOYED else None,
                "parent_app_id": parent["id"] if parent else None,
                "version": parent["version"] + 1 if parent else 1,
                "is_archived": rng.random() < 0.01,
                "is_featured": rng.random() < 0.005,
                "star_count": 0,
                "view_count": 0,
                "fork_count": 0,
                "favorite_count": 0,
                "created_at": created,
                "updated_at": updated,
                "deleted_at": updated if rng.random() < 0.01 else None,
            }
        )
    return rows


def _publicly_visible(app: dict[str, Any]) -> bool:
    return (
        app["visibility"] == Visibility.PUBLIC
        and not app["is_archived"]
        and app["deleted_at"] is None
        and app["status"] in (AppStatus.READY, AppStatus.DEPLOYED)
    )


def _event_time(rng: random.Random, now: datetime, not_before: datetime) -> datetime:
    start = max(not_before, now - timedelta(days=EVENT_DAYS))
    span = max(1, int((now - start).total_seconds()))
    # Skewed towards recent days, like real traffic on a growing gallery.
    return now - timedelta(seconds=int(span * rng.random() ** 1.5))


def _views(
    rng: random.Random,
    spec: ScaleSpec,
    now: datetime,
    apps: list[dict[str, Any]],
    popularity: list[int],
    zipf: Zipf,
    hasher: KeyedHasher,
) -> tuple[list[dict[str, Any]], defaultdict[tuple[str, date], dict[str, int]], Breakdowns]:
    devices = [DeviceType.DESKTOP] * 6 + [DeviceType.MOBILE] * 3 + [DeviceType.TABLET]
    referrers = [None, None, "https://news.example.test", "https://social.example.test"]
    viewer_pool = max(1_000, spec.users * 3)
    viewer_keys: dict[int, str] = {}
    seen: set[tuple[int, int, int]] = set()
    daily_viewers: set[tuple[int, date, int]] = set()
    daily: defaultdict[tuple[str, date], dict[str, int]] = defaultdict(
        lambda: {"views": 0, "unique_viewers": 0, "stars": 0}
    )
    breakdowns: Breakdowns = Counter()
    rows: list[dict[str, Any]] = []
    attempts = 0
    while len(rows) < spec.views and attempts < spec.views * 3:
        attempts += 1
        app_index = popularity[zipf.sample()]
        app = apps[app_index]
        viewer = rng.randrange(viewer_pool)
        viewed = _event_time(rng, now, app["created_at"])
        window = int(viewed.timestamp()) // VIEW_WINDOW_SECONDS * VIEW_WINDOW_SECONDS
        if (app_index, viewer, window) in seen:
            continue  # the same viewer in the same window: de-duplicated, as in production
        seen.add((app_index, viewer, window))
        key = viewer_keys.get(viewer)
        if key is None:
            key = hasher.hash(f"seed-viewer-{viewer}", purpose="viewer")[:VIEWER_KEY_LENGTH]
            viewer_keys[viewer] = key
        day = viewed.date()
        bucket = daily[(app["id"], day)]
        bucket["views"] += 1
        if (app_index, day, viewer) not in daily_viewers:
            daily_viewers.add((app_index, day, viewer))
            bucket["unique_viewers"] += 1
        referrer, device = rng.choice(referrers), rng.choice(devices)
        breakdowns[(app["id"], day, BreakdownDimension.REFERRER, referrer or "")] += 1
        breakdowns[(app["id"], day, BreakdownDimension.DEVICE, device.value)] += 1
        rows.append(
            {
                "app_id": app["id"],
                "viewer_key": key,
                "window_start": window,
                "referrer_origin": referrer,
                "device_type": device,
                "viewed_at": viewed,
            }
        )
    rows.sort(key=lambda r: r["viewed_at"])
    return rows, daily, breakdowns


def _stars(
    rng: random.Random,
    spec: ScaleSpec,
    now: datetime,
    apps: list[dict[str, Any]],
    popularity: list[int],
    zipf: Zipf,
    users: list[dict[str, Any]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    pairs: set[tuple[int, int]] = set()
    stars: list[dict[str, Any]] = []
    favorites: list[dict[str, Any]] = []
    target = min(spec.stars, len(users) * max(1, len(popularity)) // 2)
    attempts = 0
    while len(stars) < target and attempts < target * 5:
        attempts += 1
        app_index = popularity[zipf.sample()]
        user_index = rng.randrange(len(users))
        if (user_index, app_index) in pairs:
            continue
        pairs.add((user_index, app_index))
        app = apps[app_index]
        row = {
            "user_id": users[user_index]["id"],
            "app_id": app["id"],
            "created_at": _event_time(rng, now, app["created_at"]),
        }
        stars.append(row)
        if rng.random() < 0.3:
            favorites.append(dict(row))
    return stars, favorites
