"""`stich users purge`: hard-deleting an account leaves every maintained count true, with
no `stich db verify --repair` needed (issue 13, item 15)."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import select, update
from typer.testing import CliRunner, Result

from stich.analytics.models import AppDailyStats
from stich.analytics.recount import CHECKS
from stich.apps.models import App
from stich.audit.models import AuditLog
from stich.auth.principal import Principal
from stich.cli.common import state
from stich.cli.main import app as cli
from stich.db import Database
from stich.errors import NotFound
from stich.gallery.models import Favorite, Star
from stich.gallery.repository import Reaction
from stich.gallery.service import GalleryService
from stich.users.models import User
from stich.users.service import UserService, tombstone_email
from tests.conftest import TEST_SERVER_KEY
from tests.factories import SignedIn, make_user
from tests.gallery_support import make_app

AT = datetime(2026, 10, 5, 12, tzinfo=UTC)
EARLIER = datetime(2026, 9, 1, 8, tzinfo=UTC)


def stich(database_url: str, *args: str) -> Result:
    state._settings = None  # each invocation reads its own environment, like a new process
    env = {
        "STICH_SERVER_KEY": TEST_SERVER_KEY,
        "STICH_ENV": "test",
        "STICH_DATABASE_URL": database_url,
    }
    return CliRunner().invoke(cli, list(args), env=env)


def drift(db: Database) -> list[str]:
    found: list[str] = []
    for check in CHECKS:
        with db.write() if check.needs_write else db.read() as uow:
            found += [d.describe() for d in check.find(uow.session)]
    return found


def react(db: Database, who: SignedIn, app_id: str, at: datetime, *reactions: Reaction) -> None:
    with db.write() as uow:
        gallery = GalleryService(uow.session, clock=lambda: at)
        for reaction in reactions:
            gallery.react(reaction, Principal.user(who.user_id), app_id, on=True)


def activity(db: Database) -> tuple[SignedIn, str, str]:
    """Bob stars and favorites Alice's app on two days' worth of apps, owns a live fork of
    it that Carol stars, and stars his own fork. Returns (bob, alice's app, bob's fork)."""
    alice, bob, carol = make_user(db), make_user(db), make_user(db)
    original = make_app(db, alice.user_id, title="Original")
    other = make_app(db, alice.user_id, title="Other")
    fork = make_app(db, bob.user_id, title="Bob's fork")
    with db.write() as uow:
        uow.session.execute(update(App).where(App.id == fork).values(parent_app_id=original))
        uow.session.execute(update(App).where(App.id == original).values(fork_count=1))
    react(db, bob, original, AT, Reaction.STAR, Reaction.FAVORITE)
    react(db, bob, other, EARLIER, Reaction.STAR)
    react(db, carol, original, AT, Reaction.STAR)
    react(db, carol, fork, AT, Reaction.STAR, Reaction.FAVORITE)
    react(db, bob, fork, AT, Reaction.STAR)
    assert drift(db) == []
    return bob, original, fork


def counters(db: Database, app_id: str) -> tuple[int, int, int]:
    with db.read() as uow:
        app = uow.session.get_one(App, app_id)
        return app.star_count, app.favorite_count, app.fork_count


def daily_stars(db: Database, app_id: str) -> dict[date, int]:
    with db.read() as uow:
        rows = uow.session.execute(
            select(AppDailyStats.day, AppDailyStats.stars).where(AppDailyStats.app_id == app_id)
        )
        return {day: stars for day, stars in rows}


def test_purging_an_account_keeps_every_count_true(db: Database, database_url: str) -> None:
    bob, original, fork = activity(db)
    assert counters(db, original) == (2, 1, 1)

    result = stich(database_url, "users", "purge", bob.email, "--yes")

    assert result.exit_code == 0, result.output
    assert f"purged {bob.email}: 1 apps, 3 stars and 1 favorites taken back" in result.stdout
    assert drift(db) == []  # what `stich db verify` checks, clean without --repair
    assert counters(db, original) == (1, 0, 0)  # Carol's star stays; Bob's fork is gone
    assert daily_stars(db, original) == {AT.date(): 1}
    with db.read() as uow:
        s = uow.session
        assert s.get(User, bob.user_id) is None and s.get(App, fork) is None
        assert s.scalars(select(Star).where(Star.user_id == bob.user_id)).all() == []
        assert s.scalars(select(Favorite).where(Favorite.app_id == fork)).all() == []
        [entry] = s.scalars(select(AuditLog).where(AuditLog.action == "user.purged")).all()
        assert entry.resource_id == bob.user_id
        assert entry.new_values == {
            "stars_withdrawn": 3,
            "favorites_withdrawn": 1,
            "apps_purged": 1,
            "forks_detached": 0,
        }
    verify = stich(database_url, "db", "verify")
    assert verify.exit_code == 0, verify.output


def test_a_deleted_account_is_purged_by_its_tombstone_email(db: Database) -> None:
    bob, original, _fork = activity(db)
    with db.write() as uow:
        UserService(uow.session).delete_account(Principal.user(bob.user_id), AT)
    assert drift(db) == []
    # Soft-deleted: the fork is gone from its parent's count, Bob's stars still stand.
    assert counters(db, original) == (2, 1, 0)

    with db.write() as uow:
        summary = UserService(uow.session).purge_account(tombstone_email(bob.user_id), None, AT)

    assert summary["stars_withdrawn"] == 3 and summary["apps_purged"] == 1
    assert drift(db) == []
    assert counters(db, original) == (1, 0, 0)


def test_purge_asks_first_and_refuses_an_unknown_email(db: Database, database_url: str) -> None:
    bob, original, _fork = activity(db)
    declined = stich(database_url, "users", "purge", bob.email)  # no input: "no"
    assert declined.exit_code == 1
    assert counters(db, original) == (2, 1, 1)
    unknown = stich(database_url, "users", "purge", "nobody@example.test", "--yes")
    assert isinstance(unknown.exception, NotFound)
