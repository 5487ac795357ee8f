"""The database core on both backends: units of work, bookmarks, errors, types, ids."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select, text, update

from stich.db import Database
from stich.db import engine as engine_module
from stich.db.base import new_id
from stich.db.errors import ReadOnlyTransactionError
from stich.db.routing import Bookmark
from stich.errors import Conflict, Invalid, NotFound
from stich.users.models import User, UserIdentity
from tests.conftest import _admin_connect


def _user(email: str) -> User:
    return User(email=email, display_name="Someone")


def test_write_commits_once_and_returns_a_bookmark(db: Database) -> None:
    with db.write() as uow:
        uow.session.add(_user("a@example.test"))
        assert uow.bookmark is None  # not committed yet
    assert uow.committed
    assert uow.bookmark is not None
    Bookmark.parse(uow.bookmark)  # well-formed
    with db.read(uow.bookmark) as read:
        assert read.session.scalar(select(func.count()).select_from(User)) == 1


def test_bookmarks_never_go_backwards(db: Database) -> None:
    marks = []
    for i in range(3):
        with db.write() as uow:
            uow.session.add(_user(f"m{i}@example.test"))
        marks.append(Bookmark.parse(uow.bookmark or ""))
    assert marks == sorted(marks)
    assert Database.merge_bookmarks(marks[2].encode(), marks[0].encode()) == marks[2].encode()


def test_an_exception_rolls_back_everything(db: Database) -> None:
    with pytest.raises(RuntimeError), db.write() as uow:
        uow.session.add(_user("x@example.test"))
        uow.session.flush()
        raise RuntimeError("boom")
    with db.read() as read:
        assert read.session.scalar(select(func.count()).select_from(User)) == 0


def test_unique_violation_is_a_conflict_and_leaves_nothing(db: Database) -> None:
    with db.write() as uow:
        uow.session.add(_user("dup@example.test"))
    with pytest.raises(Conflict), db.write() as uow:
        uow.session.add(_user("other@example.test"))
        uow.session.flush()
        uow.session.add(_user("dup@example.test"))
    with db.read() as read:
        emails = read.session.scalars(select(User.email)).all()
    assert emails == ["dup@example.test"]


def test_foreign_key_violation_is_not_found(db: Database) -> None:
    with pytest.raises(NotFound), db.write() as uow:
        uow.session.add(UserIdentity(user_id=new_id(), provider="github", provider_id="1"))


def test_check_violation_is_invalid(db: Database) -> None:
    with db.write() as uow:
        user = _user("c@example.test")
        uow.session.add(user)
    with pytest.raises(Invalid), db.write() as uow:
        uow.session.execute(text("UPDATE users SET role = 'root'"))


def test_out_of_range_data_is_invalid(db: Database, backend: str) -> None:
    if backend == "sqlite":
        pytest.skip("SQLite does not enforce VARCHAR lengths")
    with pytest.raises(Invalid), db.write() as uow:
        uow.session.add(User(email="x" * 400, display_name="Too long"))


def test_writing_inside_a_read_fails_loudly(db: Database) -> None:
    with pytest.raises(ReadOnlyTransactionError), db.read("fresh") as read:
        read.session.add(_user("r@example.test"))
        read.session.flush()
    with db.read() as read:
        assert read.session.scalar(select(func.count()).select_from(User)) == 0


def test_read_accepts_fast_fresh_and_bookmarks(db: Database) -> None:
    with db.write() as uow:
        uow.session.add(_user("b@example.test"))
    for consistency in ("fast", "fresh", uow.bookmark or ""):
        with db.read(consistency) as read:
            assert read.session.scalar(select(User.email)) == "b@example.test"
            assert read.served_by == "primary"


@pytest.mark.parametrize("garbage", ["", "nope", "MTpwZzp6eno", "MjpwZzox", "é"])
def test_garbage_bookmarks_are_invalid(db: Database, garbage: str) -> None:
    with pytest.raises(Invalid) as caught, db.read(garbage):
        pass
    assert caught.value.code == "invalid_bookmark"


def test_datetimes_round_trip_as_aware_utc(db: Database) -> None:
    moment = datetime(2026, 3, 29, 1, 30, 15, 123456, tzinfo=timezone(timedelta(hours=5)))
    with db.write() as uow:
        user = _user("t@example.test")
        user.locked_until = moment
        uow.session.add(user)
    with db.read() as read:
        stored = read.session.scalar(select(User.locked_until))
        later = read.session.scalar(
            select(func.count()).where(User.locked_until > moment - timedelta(seconds=1))
        )
    assert stored == moment
    assert stored is not None and stored.tzinfo is not None
    assert stored.utcoffset() == timedelta(0)
    assert later == 1


def test_datetimes_written_by_raw_sql_read_back_as_aware_utc(db: Database, backend: str) -> None:
    # SQL outside the type writes what it likes: on SQLite, text with an offset, or
    # without one (CURRENT_TIMESTAMP's form), both read through the fast parser.
    with db.write() as uow:
        if backend == "postgresql":  # a stamp without an offset is in the session's zone
            uow.session.execute(text("SET LOCAL TIME ZONE 'UTC'"))
        uow.session.add_all([_user("offset@example.test"), _user("plain@example.test")])
        uow.session.flush()
        raw = {
            "offset@example.test": "2026-01-01 02:00:00+02:00",
            "plain@example.test": "2026-01-01 00:00:00",
        }
        for email, stamp in raw.items():
            uow.session.execute(
                text("UPDATE users SET locked_until = :stamp WHERE email = :email"),
                {"stamp": stamp, "email": email},
            )
    with db.read() as read:
        stored = dict(read.session.execute(select(User.email, User.locked_until)).all())
    midnight = datetime(2026, 1, 1, tzinfo=UTC)
    assert stored == {"offset@example.test": midnight, "plain@example.test": midnight}
    assert all(value.utcoffset() == timedelta(0) for value in stored.values() if value)


def test_naive_datetimes_are_refused(db: Database) -> None:
    with pytest.raises(Exception, match="naive datetime"), db.write() as uow:
        user = _user("n@example.test")
        user.locked_until = datetime(2026, 1, 1)  # naive on purpose
        uow.session.add(user)
        uow.session.flush()


def test_ids_are_time_ordered_and_unique() -> None:
    ids = [new_id() for _ in range(5000)]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)
    assert all(i[14] == "7" for i in ids)  # UUID version 7


def test_concurrent_writers_wait_instead_of_failing(db: Database) -> None:
    """Read-then-write transactions from many threads: no "database is locked", no lost
    update (SQLite takes the write lock at BEGIN IMMEDIATE; PostgreSQL row-locks)."""
    with db.write() as uow:
        user = _user("counter@example.test")
        uow.session.add(user)
    user_id = user.id
    errors: list[BaseException] = []

    def bump() -> None:
        try:
            for _ in range(10):
                with db.write() as uow:
                    uow.session.execute(select(User.id).where(User.id == user_id))
                    time.sleep(0.001)  # hold the transaction open a moment
                    uow.session.execute(
                        update(User)
                        .where(User.id == user_id)
                        .values(failed_login_attempts=User.failed_login_attempts + 1)
                    )
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=bump) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with db.read() as read:
        assert read.session.scalar(select(User.failed_login_attempts)) == 60


def test_sqlite_pragmas(db: Database, backend: str) -> None:
    if backend != "sqlite":
        pytest.skip("SQLite pragmas")
    with db.primary.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 5000


def test_utc_now_is_aware() -> None:
    from stich.db.base import utcnow

    assert utcnow().tzinfo is UTC


def test_objects_read_stay_usable_after_the_read_ends(db: Database) -> None:
    with db.write() as uow:
        uow.session.add(_user("kept@example.test"))
    with db.read() as read:
        user = read.session.scalars(select(User)).one()
    assert user.email == "kept@example.test"  # loaded state survives the read's end


def test_a_postgres_connection_that_died_while_idle_is_replaced_at_checkout(
    db: Database, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if backend != "postgresql":
        pytest.skip("SQLite has no server to lose")
    # Ping whatever was idle at all (the real threshold is seconds; tests do not wait).
    monkeypatch.setattr(engine_module, "PING_AFTER_IDLE_SECONDS", 0.0)
    with db.read() as uow:
        first = uow.session.scalar(text("SELECT pg_backend_pid()"))
    with _admin_connect() as admin:  # the server ends the pooled connection's backend
        admin.execute("SELECT pg_terminate_backend(%s)", (first,))
    with db.read() as uow:  # pinged, found dead, replaced: no error reaches the caller
        second = uow.session.scalar(text("SELECT pg_backend_pid()"))
    assert second != first
