"""What `stich serve`, `stich worker` and `stich studio` check before they start.

A server on a database it cannot use would answer every request with an error (500s on
an unmigrated schema, 401s and unreadable secrets under the wrong keys); refusing to
start, with one line saying why (exit 2), is kinder to whoever is at the console.
"""

from __future__ import annotations

from pathlib import Path

import typer
from sqlalchemy import Engine, and_, func, or_, select
from sqlalchemy.exc import DBAPIError

from stich.auth.models import ApiKey, UserSession
from stich.cli.errors import CliFailure, explain
from stich.config import Environment, Settings
from stich.crypto.vault import (
    DecryptionError,
    KeyNotInRing,
    SecretBinding,
    Vault,
    load_key_ring,
)
from stich.db import migrate
from stich.db.base import utcnow
from stich.db.engine import create_engine_for
from stich.errors import Unavailable
from stich.secrets.models import UserSecret

STARTUP_REFUSED = 2


def check_startup(settings: Settings, *, migrate_first: bool) -> None:
    """Refuse to start (CliFailure, exit 2) on a database that cannot be reached, is not at
    the migration head (with ``migrate_first``: upgrade it instead), holds credentials or
    secrets whose local key file is missing, or secrets the key ring cannot decrypt; then
    read (or generate) the local keys once, here, so that server processes find them in
    place and a file-system failure is one line."""
    url = settings.database_url
    engine = create_engine_for(url)
    try:
        try:
            state = migrate.migration_state(engine)
        except (DBAPIError, OSError) as exc:
            raise CliFailure(explain(exc, url), STARTUP_REFUSED) from exc
        if not state.at_head:
            if state.unknown or not migrate_first:
                hint = "" if state.unknown else " (or start with --migrate)"
                raise CliFailure(state.describe() + hint, STARTUP_REFUSED)
            migrate.upgrade(url)
            head = ", ".join(sorted(state.head))
            typer.echo(f"stich: migrated the database to {head}", err=True)
        try:
            check_server_key(engine, settings)
            check_key_ring(engine, settings)
            settings.server_key_bytes()
            load_key_ring(settings)
        except OSError as exc:
            raise CliFailure(explain(exc, url), STARTUP_REFUSED) from exc
    finally:
        engine.dispose()


def check_server_key(engine: Engine, settings: Settings) -> None:
    """A server key generated now, for a database that already holds sessions or API keys,
    would make every one of them fail (401): refuse instead, saying where the key belongs.

    (A key that is set but differs from the one they were issued with cannot be told
    apart from no credentials matching: only keyed hashes are stored.)
    """
    path = settings.server_key_path()
    if settings.server_key is not None or path.exists():
        return
    now = utcnow()
    live_keys = and_(
        ApiKey.revoked_at.is_(None), or_(ApiKey.expires_at.is_(None), ApiKey.expires_at > now)
    )
    with engine.connect() as conn:
        sessions = conn.scalar(
            select(func.count())
            .select_from(UserSession)
            .where(UserSession.revoked_at.is_(None), UserSession.expires_at > now)
        )
        api_keys = conn.scalar(select(func.count()).select_from(ApiKey).where(live_keys))
    issued = (sessions or 0) + (api_keys or 0)
    if issued:
        raise CliFailure(
            f"no server key at {path}, but the database holds {issued} sessions and API keys "
            "issued under one: restore that file or set STICH_SERVER_KEY"
            f"{_earlier(settings, path.name)} "
            "(to sign everyone out instead, put a new key of 32+ random characters there)",
            STARTUP_REFUSED,
        )


def check_key_ring(engine: Engine, settings: Settings) -> None:
    """Each key id the stored secrets name must decrypt its oldest or newest secret.

    A wrong ring fails every row under a key; one damaged row is not a reason to refuse
    (``stich secrets verify`` lists those). Two rows per key id: cheap at any size.
    """
    table = UserSecret.__table__
    live = and_(table.c.deleted_at.is_(None), table.c.ciphertext.is_not(None))
    with engine.connect() as conn:
        per_key = conn.execute(
            select(table.c.key_id, func.min(table.c.id), func.max(table.c.id), func.count())
            .where(live)
            .group_by(table.c.key_id)
        ).all()
        if not per_key:
            return
        ring_file = settings.secrets_keys_path()
        if (
            settings.secrets_keys is None
            and not ring_file.exists()
            and settings.env is not Environment.PRODUCTION
        ):
            stored = sum(count for *_, count in per_key)
            raise CliFailure(
                f"no key ring at {ring_file}, but the database holds {stored} secrets "
                f"encrypted under one: restore that file or set STICH_SECRETS_KEYS"
                f"{_earlier(settings, ring_file.name)}",
                STARTUP_REFUSED,
            )
        vault = Vault.from_settings(settings)  # never generates a ring here (see above)
        source = (
            "STICH_SECRETS_KEYS"
            if settings.secrets_keys is not None
            else str(settings.secrets_keys_path())
        )
        for key_id, oldest, newest, count in per_key:
            samples = conn.execute(
                select(table.c.id, table.c.user_id, table.c.provider, table.c.ciphertext).where(
                    table.c.id.in_({oldest, newest})
                )
            ).all()
            failures = [
                _decryption_failure(vault, ciphertext, SecretBinding(secret_id, user_id, provider))
                for secret_id, user_id, provider, ciphertext in samples
            ]
            if all(failures):
                raise CliFailure(_refusal(failures[0], key_id, count, source), STARTUP_REFUSED)


def _decryption_failure(
    vault: Vault, ciphertext: bytes, binding: SecretBinding
) -> Exception | None:
    try:
        vault.decrypt(ciphertext, binding)
    except (DecryptionError, Unavailable) as exc:
        return exc
    return None


def _refusal(failure: Exception | None, key_id: str | None, count: int, source: str) -> str:
    restore = "set STICH_SECRETS_KEYS (or restore the key file) to the ring that encrypted them"
    if isinstance(failure, KeyNotInRing):
        problem = f"has no key {key_id!r}, which encrypts {count} stored secrets"
    elif isinstance(failure, DecryptionError):
        problem = f"cannot decrypt the {count} stored secrets under key {key_id!r}"
    else:  # VaultNotConfigured: production without STICH_SECRETS_KEYS
        return f"the database holds {count} secrets but no key ring is configured: {restore}"
    return f"the secrets key ring ({source}) {problem}: {restore}"


def _earlier(settings: Settings, filename: str) -> str:
    """Where earlier versions generated keys (the current directory), if that file is there."""
    legacy = Path(".stich").resolve()
    here = settings.local_keys_dir()
    if legacy == here or not (legacy / filename).exists():
        return ""
    return f"; earlier versions kept keys in {legacy}: move its key files to {here}"
