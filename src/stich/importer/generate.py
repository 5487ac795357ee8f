"""A source of the original's schema at a chosen size, for measuring the import
(``stich import generate-source``; issue 17's size: 20k users, 100k apps, 300k stars,
2M views).

The data has the original's quirks in realistic proportions: some timestamps are the
TEXT that ``DEFAULT (CURRENT_TIMESTAMP)`` leaves, some JSON is double-encoded, emails
differ by case now and then, a tenth of the apps are forks (parents anywhere in the row
order), a twentieth are anonymous, and signed-in viewers come back within a window.
"""

from __future__ import annotations

import json
import random
import sqlite3
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from stich.crypto.legacy_passwords import hash_like_original
from stich.importer.fixtures import create_source
from stich.importer.legacy_secrets import encrypt_like_original

DAY = 86400
REFERRERS = [None, None, None, "https://news.ycombinator.com/item?id=1", "https://x.com/a/b"]
REFERRERS += [f"https://blog{i}.example.com/post/{i}" for i in range(20)]
DEVICES = ["desktop"] * 6 + ["mobile"] * 3 + ["tablet", None]
STATUSES = ["completed"] * 5 + ["deployed"] * 3 + ["draft", "generating", "error"]
FRAMEWORKS = ["react", "vue", "svelte", "next", "astro", None]


@dataclass(frozen=True)
class Size:
    users: int = 20_000
    apps: int = 100_000
    stars: int = 300_000
    views: int = 2_000_000
    audit: int = 20_000
    secrets: int = 2_000
    sessions: int = 10_000


def generate(path: Path, size: Size, *, secrets_key: str, seed: int = 17) -> None:
    rows = _Rows(size, secrets_key, seed)
    conn = create_source(path)
    conn.execute("PRAGMA journal_mode=OFF")
    conn.execute("PRAGMA synchronous=OFF")
    _fill(conn, "users", 22, rows.users())
    _fill(conn, "apps", 26, rows.apps())
    _fill(conn, "stars", 4, rows.stars())
    _fill(conn, "app_views", 6, rows.views())
    _fill(conn, "audit_logs", 10, rows.audit())
    _fill(conn, "user_secrets", 13, rows.secrets())
    conn.executemany(
        "INSERT INTO sessions (id, user_id, access_token, refresh_token, ip_address, "
        "user_agent, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        rows.sessions(),
    )
    conn.commit()
    conn.close()


class _Rows:
    def __init__(self, size: Size, secrets_key: str, seed: int) -> None:
        self.size = size
        self.secrets_key = secrets_key
        self.rng = rng = random.Random(seed)  # noqa: S311 - test data, not secrets
        self.now = int(time.time())
        self.user_ids = [str(uuid.UUID(int=rng.getrandbits(128))) for _ in range(size.users)]
        self.app_ids = [str(uuid.UUID(int=rng.getrandbits(128))) for _ in range(size.apps)]
        # One hash for every account: PBKDF2 at 100,000 iterations per user would take minutes.
        self.password = hash_like_original("password123", b"0123456789abcdef")

    def stamp(self, at: int) -> Any:
        """One row in twenty carries CURRENT_TIMESTAMP's text, as in the original."""
        if self.rng.random() < 0.05:
            return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S")
        return at

    def users(self) -> Iterator[tuple[Any, ...]]:
        rng, now, user_ids = self.rng, self.now, self.user_ids
        for i, user_id in enumerate(user_ids):
            email = f"user{i}@example.com" if i % 200 else f"User{i - 1}@Example.com"
            oauth = rng.random() < 0.2
            provider = rng.choice(["github", "google"]) if oauth else "email"
            created = now - rng.randrange(400 * DAY)
            prefs = json.dumps({"lang": "en"})
            yield (
                user_id, email, f"user_{i}", f"User {i}", None, None, provider,
                f"{provider}-{i}", 1, None if oauth else self.password, 0, None, None,
                json.dumps(prefs) if i % 7 == 0 else prefs, "system", "UTC", 1, 0,
                self.stamp(created), self.stamp(created), None, None,
            )  # fmt: skip

    def apps(self) -> Iterator[tuple[Any, ...]]:
        rng, now, user_ids, app_ids = self.rng, self.now, self.user_ids, self.app_ids
        for app_id in app_ids:
            anonymous = rng.random() < 0.05
            parent = rng.choice(app_ids) if rng.random() < 0.1 else None
            created = now - rng.randrange(365 * DAY)
            blueprint = json.dumps({"pages": rng.randrange(1, 9)})
            yield (
                app_id, f"App {app_id[:8]}", "an app made by a prompt", None, "make me an app",
                None, json.dumps(blueprint) if rng.random() < 0.1 else blueprint,
                rng.choice(FRAMEWORKS), None if anonymous else rng.choice(user_ids),
                uuid.uuid4().hex if anonymous else None,
                "public" if rng.random() < 0.4 else "private", rng.choice(STATUSES),
                None, None, None, None, None, parent, 1, int(rng.random() < 0.03), 0, None, None,
                self.stamp(created), self.stamp(created), None,
            )  # fmt: skip

    def stars(self) -> Iterator[tuple[Any, ...]]:
        rng, now, user_ids, app_ids = self.rng, self.now, self.user_ids, self.app_ids
        seen: set[tuple[int, int]] = set()
        while len(seen) < self.size.stars:
            pair = (rng.randrange(self.size.users), rng.randrange(self.size.apps))
            if pair not in seen:
                seen.add(pair)
                at = now - rng.randrange(365 * DAY)
                yield (
                    uuid.uuid4().hex,
                    user_ids[pair[0]],
                    app_ids[pair[1]],
                    self.stamp(at),
                )

    def views(self) -> Iterator[tuple[Any, ...]]:
        rng, now, user_ids, app_ids = self.rng, self.now, self.user_ids, self.app_ids
        hot = app_ids[: max(1, self.size.apps // 10)]  # a tenth of the apps get most views
        last: tuple[str, str | None, int] | None = None
        for i in range(self.size.views):
            if last is not None and rng.random() < 0.1:  # came back within the window
                app_id, user_id, at = last[0], last[1], last[2] + rng.randrange(600)
            else:
                app_id = rng.choice(hot) if rng.random() < 0.7 else rng.choice(app_ids)
                user_id = rng.choice(user_ids) if rng.random() < 0.4 else None
                at = now - rng.randrange(365 * DAY)
            last = (app_id, user_id, at) if user_id else None
            yield (
                f"v{i}",
                app_id,
                user_id,
                rng.choice(REFERRERS),
                rng.choice(DEVICES),
                at,
            )

    def audit(self) -> Iterator[tuple[Any, ...]]:
        rng, now, user_ids, app_ids = self.rng, self.now, self.user_ids, self.app_ids
        for i in range(self.size.audit):
            values = json.dumps({"title": f"t{i}"})
            yield (
                f"log{i}", rng.choice(user_ids), "app.update", "app", rng.choice(app_ids),
                json.dumps(values), values, "198.51.100.7", "Mozilla/5.0", now - i,
            )  # fmt: skip

    def secrets(self) -> Iterator[tuple[Any, ...]]:
        rng, now, user_ids = self.rng, self.now, self.user_ids
        for i in range(self.size.secrets):
            value = encrypt_like_original(self.secrets_key, f"sk-{uuid.uuid4().hex}")
            yield (
                f"sec{i}", rng.choice(user_ids), "openai", "api_key", f"key {i}", value,
                None, 1, None, 0, now, now, None,
            )  # fmt: skip

    def sessions(self) -> Iterator[tuple[Any, ...]]:
        rng, now, user_ids = self.rng, self.now, self.user_ids
        for i in range(self.size.sessions):
            yield (
                f"s{i}",
                rng.choice(user_ids),
                f"a{i}",
                f"r{i}",
                "203.0.113.1",
                "UA",
                now,
            )


def _fill(
    conn: sqlite3.Connection, table: str, width: int, rows: Iterator[tuple[Any, ...]]
) -> None:
    """All the table's columns in schema order (``width`` of them)."""
    marks = ", ".join("?" * width)
    conn.executemany(f'INSERT INTO "{table}" VALUES ({marks})', rows)  # noqa: S608
