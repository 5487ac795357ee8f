"""Review of ``stich import original`` (issue 17) from the outside: a row that cannot be
imported costs only itself (never its batch, never the run), a ``.sql`` dump runs nothing
but the data it carries, a crash half-way and a rerun land exactly what one run lands,
and no credential of the source reaches the command's output, logs or report."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text

from stich.apps.models import App
from stich.config import Settings
from stich.db import Database
from stich.importer.fixtures import create_source, dump, insert_rows
from stich.importer.report import ImportReport
from stich.importer.run import ImportOptions, run_import
from stich.users.models import User
from stich.validation import ID_PATTERN
from tests.cli_support import run_stich
from tests.conftest import (
    TEST_KEY_RING,
    TEST_SERVER_KEY,
    create_pg_database,
    drop_pg_database,
    make_settings,
)
from tests.import_support import (
    ANON_TOKEN,
    NOW,
    ORIGINAL_KEY,
    PASSWORD,
    SECRET_VALUE,
    build_awkward_source,
)

GOOD_USER = {"id": "u-good", "email": "good@example.com", "provider": "email",
             "provider_id": "p-good", "display_name": "Good", "created_at": NOW}  # fmt: skip
GOOD_APP = {"id": "a-good", "title": "Good app", "user_id": "u-good",
            "original_prompt": "x", "created_at": NOW}  # fmt: skip
ID_PATTERN_RE = re.compile(ID_PATTERN)
TABLES = ["users", "user_identities", "apps", "stars", "app_views", "app_daily_viewers",
          "audit_logs", "user_secrets", "app_daily_stats", "app_daily_breakdowns",
          "anonymous_owners", "feed_rankings"]  # fmt: skip


def run(settings: Settings, source: Path, **options: Any) -> ImportReport:
    options.setdefault("secrets_key", ORIGINAL_KEY)
    options.setdefault("batch_size", 100)
    return run_import(settings, ImportOptions(source=source, **options))


def source_with(path: Path, users: list[dict[str, Any]], apps: list[dict[str, Any]]) -> Path:
    conn = create_source(path)
    insert_rows(conn, "users", [GOOD_USER, *users])
    insert_rows(conn, "apps", [GOOD_APP, *apps])
    conn.commit()
    conn.close()
    return path


def ids(db: Database, model: Any) -> set[str]:
    with db.read() as uow:
        return set(uow.session.scalars(select(model.id)))


def test_a_json_value_the_database_refuses_costs_only_its_own_row(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    """PostgreSQL refuses ``\\u0000`` in jsonb. The writer's row-by-row retry must then
    land the rest of the batch; today the failed batch leaves the transaction aborted
    (the savepoint is never emitted: the statements bypass the session), so every row of
    the batch is rejected with 25P02, and a user's batch takes its apps down with it."""
    source = source_with(
        tmp_path / "original.db",
        users=[{"id": "u-nul", "email": "nul@example.com", "provider": "email",
                "provider_id": "p-nul", "display_name": "Nul",
                "preferences": '{"note": "\\u0000"}'}],
        apps=[{"id": "a-nul", "title": "Nul", "user_id": "u-good", "original_prompt": "x",
               "blueprint": '{"pages": "\\u0000"}'}],
    )  # fmt: skip
    report = run(settings, source)
    assert "u-good" in ids(db, User), report.as_dict()["kinds"]["users"]
    assert "a-good" in ids(db, App), report.as_dict()["kinds"]["apps"]
    for kind in ("users", "apps"):
        assert not any("25P02" in reason for reason in report[kind].rejected), report[kind]


def test_a_lone_surrogate_in_json_does_not_abort_the_import(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    """JavaScript strings can hold half an emoji (a title cut with .slice), and
    JSON.stringify writes it as ``\\ud83d``: valid JSON, not encodable as UTF-8."""
    source = source_with(
        tmp_path / "original.db",
        users=[],
        apps=[{"id": "a-half", "title": "Half", "user_id": "u-good", "original_prompt": "x",
               "blueprint": '{"title": "Party \\ud83d"}'}],
    )  # fmt: skip
    report = run(settings, source)  # must not raise UnicodeEncodeError
    assert "a-good" in ids(db, App)
    assert report["apps"].imported + report["apps"].rejected_total == 2


def test_a_sql_dump_cannot_attach_or_write_other_files(tmp_path: Path) -> None:
    """A dump is data: ATTACH (or VACUUM INTO) in it must not create files on the host,
    and a dry run writes nothing anywhere."""
    conn = create_source(tmp_path / "original.db")
    insert_rows(conn, "users", [GOOD_USER])
    conn.commit()
    dumped = tmp_path / "export.sql"
    dump(conn, dumped)
    conn.close()
    outside = tmp_path / "outside"
    outside.mkdir()
    with dumped.open("a", encoding="utf-8") as f:
        f.write(f"ATTACH DATABASE '{outside / 'attached.db'}' AS other;\n")
        f.write("CREATE TABLE other.planted (x);\n")
        f.write(f"VACUUM INTO '{outside / 'copy.db'}';\n")
    settings = make_settings(f"sqlite:///{tmp_path / 'stich.db'}", tmp_path)
    try:
        run(settings, dumped, dry_run=True)
    except Exception as exc:  # refusing the dump is fine; running its statements is not
        assert "Source" in type(exc).__name__, exc
    assert list(outside.iterdir()) == []


def _contents(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    with db.read() as uow:
        return {
            table: sorted(
                tuple(str(v) for v in row)
                for row in uow.session.execute(text(f"SELECT * FROM {table}"))
            )
            for table in ("users", "apps", "stars", "audit_logs", "app_views")
        }


@pytest.fixture
def second_url(backend: str, tmp_path: Path, sqlite_template: Path) -> Iterator[str]:
    if backend == "sqlite":
        path = tmp_path / "second.db"
        shutil.copyfile(sqlite_template, path)
        yield f"sqlite:///{path}"
        return
    url = create_pg_database("stich_review")
    yield url
    drop_pg_database(url)


class Interrupted(Exception):
    pass


def _counts(db: Database) -> dict[str, int]:
    with db.read() as uow:
        return {t: int(uow.session.scalar(text(f"SELECT count(*) FROM {t}")) or 0) for t in TABLES}


def test_a_crash_half_way_then_a_rerun_lands_what_one_run_lands(
    settings: Settings, db: Database, tmp_path: Path, second_url: str
) -> None:
    source = build_awkward_source(tmp_path / "original.db")

    def crash_in_views(table: str, done: int) -> None:
        if table == "app_views" and done >= 2:
            raise Interrupted

    with pytest.raises(Interrupted):
        run_import(
            settings,
            ImportOptions(source=source, batch_size=2, secrets_key=ORIGINAL_KEY),
            on_rows=crash_in_views,
        )
    rerun = run(settings, source, batch_size=2)
    assert rerun.verify_clean is True
    clean_settings = make_settings(second_url, tmp_path / "second")
    run(clean_settings, source, batch_size=2)
    clean_db = Database(clean_settings)
    try:
        assert _counts(db) == _counts(clean_db)
        assert {k: v for k, v in _contents(db).items() if k != "app_views"} == {
            k: v for k, v in _contents(clean_db).items() if k != "app_views"
        }
    finally:
        clean_db.dispose()


def test_no_credential_of_the_source_reaches_output_logs_or_report(
    database_url: str, db: Database, tmp_path: Path
) -> None:
    """(``db``: its teardown empties the shared PostgreSQL database afterwards.)"""
    source = build_awkward_source(tmp_path / "original.db")
    original = sqlite3.connect(source)
    stored = [r[0] for r in original.execute("SELECT password_hash FROM users") if r[0]]
    stored += [r[0] for r in original.execute("SELECT encrypted_value FROM user_secrets")]
    original.close()
    report_file = tmp_path / "report.json"
    env = {
        "STICH_DATABASE_URL": database_url,
        "STICH_SERVER_KEY": TEST_SERVER_KEY,
        "STICH_SECRETS_KEYS": TEST_KEY_RING,
        "STICH_ENV": "test",
        "STICH_EMBEDDED_WORKER": "off",
        "STICH_LOG_LEVEL": "debug",
        "STICH_IMPORT_SECRETS_KEY": ORIGINAL_KEY,
    }
    result = run_stich(
        "import", "original", str(source), "--report", str(report_file), cwd=tmp_path, env=env
    )
    assert result.returncode == 0, result.stderr[-2000:]
    seen = result.stdout + result.stderr + report_file.read_text()
    secrets = [PASSWORD, SECRET_VALUE, "sk-never-seen-1234", ANON_TOKEN, ORIGINAL_KEY,
               "raw-access", "raw-refresh", "203.0.113.9", *stored]  # fmt: skip
    for secret in secrets:
        assert secret not in seen, secret
    assert json.loads(report_file.read_text())["kinds"]["secrets"]["imported"] == 1


def test_an_account_merged_into_a_rejected_one_is_not_lost(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    """Two emails differing by case: the earlier account is kept, the later merged into
    it. When the earlier one cannot be imported (here: an id longer than Stich's), the
    later one must be imported itself, not merged into nothing with all its apps."""
    long_id = "u-" + "x" * 40
    source = source_with(
        tmp_path / "original.db",
        users=[
            {"id": long_id, "email": "Same@example.com", "provider": "email",
             "provider_id": "p-long", "display_name": "Early", "created_at": NOW - 86400},
            {"id": "u-later", "email": "same@example.com", "provider": "email",
             "provider_id": "p-later", "display_name": "Later", "created_at": NOW},
        ],
        apps=[{"id": "a-later", "title": "Later's app", "user_id": "u-later",
               "original_prompt": "x", "created_at": NOW}],
    )  # fmt: skip
    report = run(settings, source)
    assert "u-later" in ids(db, User), report.as_dict()["kinds"]["users"]
    assert "a-later" in ids(db, App)


def test_an_old_token_claims_only_apps_nobody_owns(
    settings: Settings, db: Database, client: TestClient, tmp_path: Path
) -> None:
    """An app the original gave both an account and a session token belongs to the
    account: presenting the token at sign-up must not move it."""
    token = "0f0e0d0c-owned-app-session-token"
    source = source_with(
        tmp_path / "original.db",
        users=[],
        apps=[{"id": "a-owned", "title": "Owned", "user_id": "u-good", "session_token": token,
               "original_prompt": "x", "created_at": NOW}],
    )  # fmt: skip
    run(settings, source)
    body = {"email": "thief@example.com", "password": "a long password",
            "display_name": "Thief", "anonymous_token": token}  # fmt: skip
    response = client.post("/api/auth/register", json=body)
    assert response.status_code in (201, 422), response.text
    with db.read() as uow:
        app = uow.session.get(App, "a-owned")
        assert app is not None and app.user_id == "u-good"


def _numbers(report: ImportReport) -> dict[str, tuple[int, int, int, dict[str, int]]]:
    return {
        name: (kind.read, kind.imported, kind.merged, dict(kind.rejected))
        for name, kind in report.kinds.items()
    }


def test_a_dry_run_says_what_the_import_will_do(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    """--dry-run validates everything: its numbers are the real run's, also when the
    target already holds an account with one of the source's emails."""
    from tests.factories import make_user

    taken = make_user(db, name="taken")
    source = source_with(
        tmp_path / "original.db",
        users=[{"id": "u-taken", "email": taken.email.upper(), "provider": "email",
                "provider_id": "p-taken", "display_name": "Taken"}],
        apps=[],
    )  # fmt: skip
    dry = run(settings, source, dry_run=True)
    real = run(settings, source)
    assert _numbers(dry) == _numbers(real)


def test_a_dry_run_of_the_awkward_source_says_what_the_import_will_do(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    source = build_awkward_source(tmp_path / "original.db")
    dry = run(settings, source, dry_run=True)
    real = run(settings, source)
    assert _numbers(dry) == _numbers(real)


def _view_state(db: Database) -> dict[str, Any]:
    from stich.analytics.models import AppDailyStats

    with db.read() as uow:
        s = uow.session
        return {
            "counters": sorted(s.execute(select(App.id, App.view_count)).tuples()),
            "daily": sorted(
                s.execute(
                    select(AppDailyStats.app_id, AppDailyStats.day, AppDailyStats.views)
                ).tuples()
            ),
        }


def test_imported_history_older_than_the_retention_survives_the_purge(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    """The awkward source has a view 200 days old (STICH_VIEW_RETENTION_DAYS=90): counted
    by the import, still counted after maintenance purges the raw row, verify clean."""
    from stich.importer.rebuild import verify
    from stich.maintenance.jobs import run_maintenance

    source = build_awkward_source(tmp_path / "original.db")
    assert settings.view_retention_days == 90
    report = run(settings, source)
    assert report.verify_clean is True
    before = _view_state(db)
    assert dict(before["counters"])["a-fork"] == 1
    run_maintenance(db, settings)
    with db.read() as uow:  # the raw row is gone, its count is not
        old = uow.session.execute(text("SELECT count(*) FROM app_views WHERE app_id = 'a-fork'"))
        assert old.scalar() == 0
    assert _view_state(db) == before
    assert verify(db, settings) == 0


def test_a_dump_whose_first_line_holds_several_statements_imports(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    """Transaction control sharing a line with the first CREATE TABLE (a dump joined or
    minified): only the BEGIN is skipped, never the statements after it on that line."""
    source = build_awkward_source(tmp_path / "original.db")
    conn = sqlite3.connect(source)
    dumped = tmp_path / "export.sql"
    dump(conn, dumped)
    conn.close()
    lines = dumped.read_text(encoding="utf-8").split("\n")
    assert lines[0] == "BEGIN TRANSACTION;"
    dumped.write_text("PRAGMA foreign_keys=OFF; " + lines[0] + " " + "\n".join(lines[1:]))
    report = run(settings, dumped)
    assert report["apps"].imported == 5


def test_every_imported_id_is_one_the_api_accepts(
    settings: Settings, db: Database, client: TestClient, tmp_path: Path
) -> None:
    """Ids are kept as they are, so an id the API's path pattern refuses would be an app
    or account nobody can reach: such a row is rejected (or re-keyed), never imported."""
    source = source_with(
        tmp_path / "original.db",
        users=[{"id": "user:1", "email": "colon@example.com", "provider": "email",
                "provider_id": "p-colon", "display_name": "Colon"}],
        apps=[{"id": "app.one", "title": "Dotted", "user_id": "u-good", "original_prompt": "x",
               "visibility": "public", "status": "completed", "created_at": NOW}],
    )  # fmt: skip
    run(settings, source)
    for app_id in ids(db, App):
        assert client.get(f"/api/apps/{app_id}").status_code != 422, app_id
    assert ID_PATTERN_RE.match("user:1") is None
    for user_id in ids(db, User):
        assert ID_PATTERN_RE.match(user_id), user_id


def test_odd_legacy_hashes_never_sign_in_and_never_fail_loudly(
    settings: Settings, db: Database, client: TestClient, tmp_path: Path
) -> None:
    import base64
    import hashlib

    from stich.crypto.legacy_passwords import hash_like_original

    salt = b"s" * 16
    weak = base64.b64encode(salt + hashlib.pbkdf2_hmac("sha256", b"pw-odd-1", salt, 1000, 32))
    short = base64.b64encode(salt + b"x" * 31).decode()
    users = [
        ("u-iter", weak.decode()),  # the right length, other iterations: cannot tell
        ("u-short", short),  # 47 bytes: not the original's format
        ("u-space", "  " + hash_like_original("pw-odd-3", salt) + "\n"),
        ("u-junk", "$argon2id$v=19$m=1,t=1,p=1$c2FsdA$aGFzaA"),
    ]
    source = source_with(
        tmp_path / "original.db",
        users=[
            {"id": uid, "email": f"{uid}@example.com", "provider": "email",
             "provider_id": uid, "display_name": uid, "password_hash": stored}
            for uid, stored in users
        ],
        apps=[],
    )  # fmt: skip
    report = run(settings, source)
    assert report["users"].imported == 5
    outcomes = {}
    for uid, password in (("u-iter", "pw-odd-1"), ("u-short", "x"), ("u-space", "pw-odd-3"),
                          ("u-junk", "x")):  # fmt: skip
        response = client.post(
            "/api/auth/login", json={"email": f"{uid}@example.com", "password": password}
        )
        outcomes[uid] = response.status_code
    assert outcomes == {"u-iter": 401, "u-short": 401, "u-space": 200, "u-junk": 401}


def test_json_nested_past_the_recursion_limit_does_not_abort_the_import(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    """json.loads raises RecursionError (not a JSONDecodeError) on deep nesting."""
    deep = '{"a":' * 5000 + "1" + "}" * 5000
    source = source_with(
        tmp_path / "original.db",
        users=[],
        apps=[{"id": "a-deep", "title": "Deep", "user_id": "u-good", "original_prompt": "x",
               "blueprint": deep}],
    )  # fmt: skip
    report = run(settings, source)  # must not raise RecursionError
    assert "a-good" in ids(db, App)
    assert report["apps"].imported + report["apps"].rejected_total == 2


def test_imported_audit_values_are_objects_as_stich_writes_them(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    """Stich's audit values are JSON objects (GET /api/me/audit and the Studio read them
    so): a list, number or string from the original is kept inside an object, or dropped
    with a note, never stored bare (today GET /api/me/audit answers 500 for such a user)."""
    from stich.audit.models import AuditLog

    source = source_with(tmp_path / "original.db", users=[], apps=[])
    conn = sqlite3.connect(source)
    insert_rows(
        conn,
        "audit_logs",
        [
            {"id": "l-list", "user_id": "u-good", "action": "x", "resource_type": "r",
             "resource_id": "1", "old_values": "[1, 2]", "new_values": "3"},
            {"id": "l-text", "user_id": "u-good", "action": "x", "resource_type": "r",
             "resource_id": "1", "old_values": '"plain words"', "new_values": "not json"},
        ],
    )  # fmt: skip
    conn.commit()
    conn.close()
    run(settings, source)
    with db.read() as uow:
        entries = list(uow.session.scalars(select(AuditLog)))
    assert len(entries) == 2
    for entry in entries:
        for value in (entry.old_values, entry.new_values):
            assert value is None or isinstance(value, dict), value


def test_blobs_in_text_columns_do_not_abort_the_import(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    """SQLite (and D1) store whatever was bound: a BLOB in a TEXT column is one bad row,
    rejected or converted, never an exception that stops the run."""
    source = source_with(
        tmp_path / "original.db",
        users=[
            {"id": "u-blob-mail", "email": b"blob@example.com", "provider": "email",
             "provider_id": "p-blob", "display_name": "Blob"},
            {"id": b"u-blob-id", "email": "blobid@example.com", "provider": "email",
             "provider_id": "p-blob-id", "display_name": b"Blob name"},
        ],
        apps=[{"id": "a-blob", "title": b"Blob title", "user_id": "u-good",
               "original_prompt": b"prompt", "description": b"\xff\xfe"}],
    )  # fmt: skip
    report = run(settings, source)  # must not raise
    assert "u-good" in ids(db, User) and "a-good" in ids(db, App)
    assert report["users"].read == 3
    with db.read() as uow:
        for user_id in uow.session.scalars(select(User.id)):
            assert isinstance(user_id, str), user_id


def test_a_dry_run_creates_no_database_file(tmp_path: Path) -> None:
    """'nothing is written anywhere': not even an empty SQLite file for the target."""
    source = build_awkward_source(tmp_path / "original.db")
    target = tmp_path / "not-yet.db"
    settings = make_settings(f"sqlite:///{target}", tmp_path)
    report = run(settings, source, dry_run=True)
    assert report["apps"].imported == 5
    assert not target.exists()


def test_a_dry_run_against_a_target_with_data_writes_nothing(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    source = build_awkward_source(tmp_path / "original.db")
    run(settings, source)
    before = _contents(db), _counts(db)
    again = run(settings, source, dry_run=True)
    assert again["apps"].merged == 5
    assert (_contents(db), _counts(db)) == before
