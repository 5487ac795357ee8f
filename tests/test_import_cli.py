"""The ``stich import original`` command, and the pieces it reads the original with."""

from __future__ import annotations

import base64
import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from stich.auth.anonymous import anonymous_owner_hash
from stich.cli.common import state
from stich.cli.main import app as cli
from stich.crypto import legacy_passwords
from stich.crypto.passwords import Passwords
from stich.crypto.tokens import KeyedHasher
from stich.db import Database
from stich.errors import Invalid
from stich.importer.legacy_secrets import OriginalSecrets, Undecryptable, encrypt_like_original
from stich.importer.values import json_value, timestamp
from tests.cli_support import run_stich
from tests.conftest import TEST_KEY_RING, TEST_SERVER_KEY
from tests.import_support import ORIGINAL_KEY, OTHER_KEY, build_awkward_source


def stich(database_url: str, *args: str) -> Result:
    state._settings = None  # each invocation reads its own environment, like a new process
    env = {
        "STICH_SERVER_KEY": TEST_SERVER_KEY,
        "STICH_SECRETS_KEYS": TEST_KEY_RING,
        "STICH_ENV": "test",
        "STICH_DATABASE_URL": database_url,
        "STICH_EMBEDDED_WORKER": "off",
    }
    return CliRunner().invoke(cli, list(args), env=env)


def test_import_then_db_verify_is_clean(database_url: str, tmp_path: Path, db: Database) -> None:
    # ``db``: its teardown empties the database the command wrote (other tests share it).
    source = build_awkward_source(tmp_path / "original.db")
    report_file = tmp_path / "report.json"
    args = ["import", "original", str(source), "--secrets-key", ORIGINAL_KEY]
    result = stich(database_url, *args, "--report", str(report_file))
    assert result.exit_code == 0, result.output
    assert "stich db verify: clean" in result.output
    assert ORIGINAL_KEY not in result.output and "sk-original" not in result.output
    report = json.loads(report_file.read_text())
    assert report["kinds"]["users"]["merged"] == 1
    assert report["kinds"]["views"]["rejected_by_reason"]["orphan: app not imported"] == 1
    assert report["kinds"]["sessions"]["imported"] == 0
    verified = stich(database_url, "db", "verify")
    assert verified.exit_code == 0, verified.output


def test_secrets_need_a_key_or_skip(database_url: str, tmp_path: Path, db: Database) -> None:
    source = build_awkward_source(tmp_path / "original.db")
    result = stich(database_url, "import", "original", str(source))
    assert result.exit_code != 0
    assert "--secrets-key" in str(result.exception)


def test_a_source_that_is_not_the_original_is_refused_in_one_line(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE users (id text PRIMARY KEY, email text)")
    conn.close()
    env = {"STICH_DATABASE_URL": f"sqlite:///{tmp_path / 'stich.db'}", "STICH_ENV": "test"}
    env["STICH_SERVER_KEY"] = TEST_SERVER_KEY
    result = run_stich("import", "original", str(other), cwd=tmp_path, env=env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "is not a database of the original: missing column users.username" in lines[0]
    assert "table apps" in lines[0]
    assert not (tmp_path / "stich.db").exists()  # refused before touching the database


def test_timestamps_in_both_shapes() -> None:
    expected = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert timestamp(int(expected.timestamp())) == expected
    assert timestamp("2024-01-02 03:04:05") == expected
    assert timestamp(str(int(expected.timestamp()))) == expected
    assert timestamp(int(expected.timestamp()) * 1000) == expected  # milliseconds
    assert timestamp(None) is None
    with pytest.raises(ValueError, match="unreadable timestamp"):
        timestamp("yesterday")


def test_double_encoded_json_is_decoded() -> None:
    assert json_value('{"a": 1}') == {"a": 1}
    assert json_value(json.dumps(json.dumps({"a": 1}))) == {"a": 1}
    assert json_value('"plain text"') == "plain text"


def test_legacy_password_hashes() -> None:
    stored = legacy_passwords.from_original(legacy_passwords.hash_like_original("pw", b"x" * 16))
    assert stored is not None and legacy_passwords.is_legacy(stored)
    passwords = Passwords(time_cost=1, memory_cost=8, parallelism=1)
    assert passwords.verify(stored, "pw") is True
    assert passwords.verify(stored, "wrong") is False
    assert passwords.needs_rehash(stored) is True
    assert legacy_passwords.from_original("not base64 at all!") is None
    assert legacy_passwords.from_original(base64.b64encode(b"short").decode()) is None


def test_legacy_secrets_decrypt_only_with_their_key() -> None:
    value = encrypt_like_original(ORIGINAL_KEY, "sk-123")
    assert OriginalSecrets(ORIGINAL_KEY).decrypt(value) == "sk-123"
    with pytest.raises(Undecryptable):
        OriginalSecrets(OTHER_KEY).decrypt(value)
    with pytest.raises(ValueError, match="32 bytes"):
        OriginalSecrets(base64.b64encode(b"k" * 16).decode())
    assert "sk-" not in repr(OriginalSecrets(ORIGINAL_KEY))


def test_anonymous_tokens_old_and_forged() -> None:
    hasher = KeyedHasher(TEST_SERVER_KEY.encode())
    legacy = "c0ffee00-legacy-session-token-42"
    assert anonymous_owner_hash(hasher, legacy) == hasher.token_hash(legacy)
    for forged in ("stich_san_" + "A" * 64, "short", "has spaces in it, not a token"):
        with pytest.raises(Invalid):
            anonymous_owner_hash(hasher, forged)


def test_a_dump_with_a_bom_and_statements_sharing_lines_loads(tmp_path: Path) -> None:
    from stich.importer.fixtures import dump
    from stich.importer.source import Source

    source = build_awkward_source(tmp_path / "original.db")
    conn = sqlite3.connect(source)
    dump(conn, tmp_path / "plain.sql")
    conn.close()
    text = (tmp_path / "plain.sql").read_text()
    # Two INSERTs on one line, the file led by a byte-order mark, as editors may save it.
    joined = text.replace(');\nINSERT INTO "stars"', '); INSERT INTO "stars"', 1)
    assert joined != text
    (tmp_path / "export.sql").write_text("\ufeff" + joined, encoding="utf-8")
    with Source(tmp_path / "export.sql") as loaded:
        assert loaded.count("users") == 5 and loaded.count("stars") == 5
        assert loaded.count("app_views") == 7


def test_a_dump_keeps_values_spread_over_lines(tmp_path: Path) -> None:
    from stich.importer.fixtures import dump
    from stich.importer.source import Source

    source = build_awkward_source(tmp_path / "original.db")
    prompt = "first line;\n" + "middle line\n" * 500 + "; last line);"
    conn = sqlite3.connect(source)
    conn.execute("UPDATE apps SET original_prompt = ? WHERE id = 'a-public'", (prompt,))
    conn.commit()
    dump(conn, tmp_path / "export.sql")
    conn.close()
    with Source(tmp_path / "export.sql") as loaded:
        rows = list(loaded.query("SELECT original_prompt FROM apps WHERE id = 'a-public'"))
        assert rows == [(prompt,)]
        assert loaded.count("apps") == 6


def test_a_dump_never_touches_another_file(tmp_path: Path) -> None:
    from stich.importer.source import Source, SourceError

    planted = tmp_path / "planted.db"
    dumped = tmp_path / "export.sql"
    dumped.write_text(f"ATTACH DATABASE '{planted}' AS o;\nCREATE TABLE o.t (x);\n")
    with pytest.raises(SourceError):
        Source(dumped)
    assert not planted.exists()
