"""Key rotation and verification, through the library and the `stich secrets` commands."""

from __future__ import annotations

import base64
import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import structlog
from pydantic import SecretStr
from sqlalchemy import func, select, update
from typer.testing import CliRunner, Result

from stich.auth.principal import Principal
from stich.cli.common import state
from stich.cli.main import app as cli
from stich.config import parse_key_ring
from stich.crypto.vault import KeyNotInRing, Vault, VaultNotConfigured
from stich.db import Database
from stich.secrets.models import UserSecret
from stich.secrets.repository import SecretRepository
from stich.secrets.schemas import SecretCreate, SecretUpdate
from stich.secrets.service import (
    RotationReport,
    SecretService,
    _rotate_row,
    rotate_keys,
    verify_secrets,
)
from tests.conftest import TEST_SERVER_KEY
from tests.factories import make_user

OLD = "old:" + base64.b64encode(os.urandom(32)).decode()
NEW = "new:" + base64.b64encode(os.urandom(32)).decode()


def vault(ring: str) -> Vault:
    return Vault(parse_key_ring(ring))


class Killed(BaseException):
    """Stands in for the process being killed in the middle of a batch."""


def kill_after(rows: int) -> Callable[[str], None]:
    done: list[str] = []

    def on_row(secret_id: str) -> None:
        done.append(secret_id)
        if len(done) == rows:
            raise Killed

    return on_row


def store_secrets(db: Database, ring: str, count: int) -> dict[str, tuple[Principal, str]]:
    """``count`` secrets spread over three users: {secret id: (owner, value)}."""
    owners = [Principal.user(make_user(db).user_id) for _ in range(3)]
    stored: dict[str, tuple[Principal, str]] = {}
    with db.write() as uow:
        service = SecretService(uow.session, vault(ring))
        for i in range(count):
            owner, value = owners[i % 3], f"sk-rotation-{i}-" + os.urandom(12).hex()
            body = SecretCreate(
                provider=("openai", "anthropic")[i % 2],
                display_name=f"key {i}",
                value=SecretStr(value),
            )
            stored[service.create(owner, body).id] = (owner, value)
    return stored


def reveal_all(db: Database, ring: str, stored: dict[str, tuple[Principal, str]]) -> None:
    for secret_id, (owner, value) in stored.items():
        with db.write() as uow:
            outcome = SecretService(uow.session, vault(ring)).reveal(owner, secret_id)
        assert outcome.unwrap().value.get_secret_value() == value


def keys_in_use(db: Database) -> dict[str | None, int]:
    with db.read() as uow:
        rows = uow.session.execute(
            select(UserSecret.key_id, func.count()).group_by(UserSecret.key_id)
        ).all()
    return {row[0]: row[1] for row in rows}


def test_rotation_killed_midway_then_rerun_loses_nothing(db: Database) -> None:
    stored = store_secrets(db, OLD, 10)
    ring = f"{NEW},{OLD}"

    with pytest.raises(Killed):
        rotate_keys(db, vault(ring), batch_size=4, on_row=kill_after(6))
    # The first batch (4 rows) committed; the interrupted one rolled back entirely.
    assert keys_in_use(db) == {"new": 4, "old": 6}
    reveal_all(db, ring, stored)  # nothing is unreadable in between
    half_way = verify_secrets(db, vault(ring))
    assert half_way.clean and half_way.not_under_active == 6

    report = rotate_keys(db, vault(ring), batch_size=4)
    assert (report.pending, report.rotated, report.failures) == (6, 6, {})
    assert keys_in_use(db) == {"new": 10}
    final = verify_secrets(db, vault(ring))
    assert final.clean and final.checked == 10 and final.not_under_active == 0

    # The old key can now leave the ring.
    reveal_all(db, NEW, stored)
    assert rotate_keys(db, vault(NEW)).rotated == 0


def test_limit_stops_after_k_rows(db: Database) -> None:
    stored = store_secrets(db, OLD, 5)
    ring = f"{NEW},{OLD}"
    first = rotate_keys(db, vault(ring), batch_size=2, limit=3)
    assert first.rotated == 3 and first.stopped_early
    assert keys_in_use(db) == {"new": 3, "old": 2}
    second = rotate_keys(db, vault(ring), batch_size=2)
    assert second.rotated == 2 and not second.stopped_early
    reveal_all(db, ring, stored)


def test_a_ring_without_the_old_key_fails_clearly(db: Database) -> None:
    stored = store_secrets(db, OLD, 3)
    report = verify_secrets(db, vault(NEW))
    assert report.failures == dict.fromkeys(stored, "unknown_key")
    secret_id, (owner, value) = next(iter(stored.items()))
    with db.write() as uow:
        outcome = SecretService(uow.session, vault(NEW)).reveal(owner, secret_id)
    with pytest.raises(KeyNotInRing, match="'old'") as info:
        outcome.unwrap()
    assert value not in str(info.value)
    # Rotation with such a ring reports every row and overwrites none of them.
    rotation = rotate_keys(db, vault(NEW))
    assert rotation.rotated == 0 and set(rotation.failures) == set(stored)
    reveal_all(db, OLD, stored)


def test_rotation_never_overwrites_a_row_changed_meanwhile(db: Database) -> None:
    stored = store_secrets(db, OLD, 1)
    secret_id, (owner, _old_value) = next(iter(stored.items()))
    ring = f"{NEW},{OLD}"
    with db.read() as uow:  # the rotation reads the row...
        (stale,) = SecretRepository(uow.session).stored_batch(after_id=None, limit=10)
    with db.write() as uow:  # ...the owner replaces the value meanwhile...
        SecretService(uow.session, vault(OLD)).update(
            owner, secret_id, SecretUpdate(value=SecretStr("sk-replaced-value-0123456789"))
        )
    report = RotationReport(active_key_id="new")
    with db.write() as uow:  # ...and the rotation's conditional update finds it changed.
        _rotate_row(uow.session, vault(ring), stale, report)
    assert (report.rotated, report.skipped) == (0, 1)
    reveal_all(db, ring, {secret_id: (owner, "sk-replaced-value-0123456789")})
    assert rotate_keys(db, vault(ring)).rotated == 1  # a later run picks it up


# The command line.


def invoke(args: list[str], *, ring: str | None, tmp_path: Path) -> Result:
    state._settings = None  # each invocation reads its own environment, like a new process
    env = {
        "STICH_SERVER_KEY": TEST_SERVER_KEY,
        "STICH_ENV": "test",
        "STICH_SECRETS_KEYS_FILE": str(tmp_path / "local.keys"),
        "STICH_SECRETS_KEYS": ring,
    }
    result = CliRunner().invoke(cli, args, env=env)
    restore_logging()
    return result


def restore_logging() -> None:
    # The command bound the log output to the runner's stream, which is closed by now.
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=sys.stderr))


def test_cli_generate_key_prints_a_usable_ring_entry(tmp_path: Path) -> None:
    result = invoke(["secrets", "generate-key", "--key-id", "k2026"], ring=None, tmp_path=tmp_path)
    assert result.exit_code == 0, result.output
    entry = result.stdout.strip().splitlines()[0]
    ring = parse_key_ring(entry)
    assert list(ring) == ["k2026"] and len(ring["k2026"]) == 32
    bad = invoke(["secrets", "generate-key", "--key-id", "no way"], ring=None, tmp_path=tmp_path)
    assert bad.exit_code != 0


def test_cli_rotate_interrupted_then_rerun_and_verify(
    db: Database, database_url: str, tmp_path: Path
) -> None:
    stored = store_secrets(db, OLD, 7)
    ring = f"{NEW},{OLD}"
    base = ["--database-url", database_url, "secrets"]

    partial = invoke(
        [*base, "rotate-key", "--batch-size", "2", "--limit", "3"], ring=ring, tmp_path=tmp_path
    )
    assert partial.exit_code == 0, partial.output
    assert "rotated 3 of 7" in partial.stdout and "run again" in partial.stdout
    assert keys_in_use(db) == {"new": 3, "old": 4}

    rest = invoke([*base, "rotate-key", "--batch-size", "2"], ring=ring, tmp_path=tmp_path)
    assert rest.exit_code == 0, rest.output
    assert "rotated 4 of 4" in rest.stdout

    clean = invoke([*base, "verify"], ring=NEW, tmp_path=tmp_path)
    assert clean.exit_code == 0, clean.output
    assert "checked 7 secrets: 0 failed, 0 not yet under the active key new" in clean.stdout
    reveal_all(db, NEW, stored)
    for _, value in stored.values():
        assert value not in clean.output + rest.output + partial.output


def test_cli_verify_reports_failures_by_id_only(
    db: Database, database_url: str, tmp_path: Path
) -> None:
    stored = store_secrets(db, OLD, 3)
    first, second, _third = list(stored)
    with db.write() as uow:  # copy one row's ciphertext onto another
        blob = uow.session.scalar(select(UserSecret.ciphertext).where(UserSecret.id == first))
        uow.session.execute(
            update(UserSecret).where(UserSecret.id == second).values(ciphertext=blob)
        )
    result = invoke(
        ["--database-url", database_url, "secrets", "verify"], ring=OLD, tmp_path=tmp_path
    )
    assert result.exit_code == 1
    assert f"{second}  integrity" in result.stdout
    assert first not in result.stdout
    for _, value in stored.values():
        assert value not in result.output

    missing = invoke(
        ["--database-url", database_url, "secrets", "verify"], ring=NEW, tmp_path=tmp_path
    )
    assert missing.exit_code == 1
    assert missing.stdout.count("unknown_key") == 3


def test_cli_without_a_ring_in_production_refuses(database_url: str, tmp_path: Path) -> None:
    state._settings = None
    env = {
        "STICH_SERVER_KEY": TEST_SERVER_KEY,
        "STICH_ENV": "production",
        "STICH_SECRETS_KEYS": None,
        "STICH_SECRETS_KEYS_FILE": str(tmp_path / "local.keys"),
    }
    result = CliRunner().invoke(
        cli, ["--database-url", database_url, "secrets", "rotate-key"], env=env
    )
    restore_logging()
    assert isinstance(result.exception, VaultNotConfigured)
    assert "STICH_SECRETS_KEYS" in result.exception.message
    assert not (tmp_path / "local.keys").exists()
