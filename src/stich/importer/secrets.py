"""Users' provider keys: decrypted with the original's key (``--secrets-key``) and
encrypted again into Stich's vault, bound to their row (id kept), owner and provider.

A value that does not decrypt is rejected and reported, never imported; ``--skip-secrets``
skips them all, with a count. Plaintext exists only inside :func:`_secret` and is never
logged, reported or kept.
"""

from __future__ import annotations

from typing import Any

from stich.crypto.vault import SecretBinding
from stich.db.base import utcnow
from stich.importer.context import ImportContext
from stich.importer.events import stream_table
from stich.importer.legacy_secrets import Undecryptable
from stich.importer.source import Row, Source
from stich.importer.values import BadValue, fit, flag, integer, row_id, timestamp
from stich.importer.writer import Column
from stich.secrets.models import SecretType
from stich.secrets.service import preview_of

SECRET_COLUMNS: list[Column] = [
    ("id", "varchar"), ("user_id", "varchar"), ("provider", "varchar"),
    ("secret_type", "varchar"), ("display_name", "varchar"), ("ciphertext", "bytea"),
    ("key_id", "varchar"), ("preview", "varchar"), ("is_active", "boolean"),
    ("usage_count", "integer"), ("last_used_at", "timestamptz"),
    ("expires_at", "timestamptz"), ("created_at", "timestamptz"),
    ("updated_at", "timestamptz"),
]  # fmt: skip
SECRET_TYPES = {t.value for t in SecretType}
SKIPPED = "not imported (--skip-secrets)"


def import_secrets(source: Source, ctx: ImportContext) -> None:
    report = ctx.report["secrets"]
    if ctx.skip_secrets or ctx.secrets is None:
        report.read = source.count("user_secrets")
        if report.read:
            report.rejected[SKIPPED] = report.read
        ctx.on_rows("user_secrets", report.read)
        return
    enc = ctx.encode

    def secret(raw: Row) -> tuple[Any, ...]:
        row_id(raw["id"])
        user_id = ctx.user(raw["user_id"])
        if user_id is None:
            raise BadValue("orphan: user not imported")
        provider = fit(str(raw["provider"] or "").strip().lower(), 50)
        if not provider:
            raise BadValue("no provider")
        assert ctx.secrets is not None
        try:
            value = ctx.secrets.decrypt(raw["encrypted_value"] or "")
        except Undecryptable as exc:
            raise BadValue("does not decrypt with --secrets-key") from exc
        ciphertext, key_id = None, None
        if ctx.vault is not None:  # None in a dry run: decrypting is the check
            binding = SecretBinding(secret_id=raw["id"], user_id=user_id, provider=provider)
            ciphertext, key_id = ctx.vault.encrypt(value, binding), ctx.vault.active_key_id
        kind = str(raw["secret_type"] or "").lower()
        created = timestamp(raw["created_at"]) or utcnow()
        return (
            raw["id"],
            user_id,
            provider,
            kind if kind in SECRET_TYPES else SecretType.OTHER.value,
            fit(str(raw["display_name"] or provider).strip() or provider, 100),
            ciphertext,
            key_id,
            preview_of(value),
            enc.b(flag(raw["is_active"], True)),
            max(0, integer(raw["usage_count"])),
            enc.dt(timestamp(raw["last_used"])),
            enc.dt(timestamp(raw["expires_at"])),
            enc.dt(created),
            enc.dt(max(timestamp(raw["updated_at"]) or created, created)),
        )

    stream_table(
        source, ctx, "secrets", "user_secrets", "user_secrets", SECRET_COLUMNS, secret,
        lambda rows: len(ctx.present("user_secrets", [r[0] for r in rows])),
    )  # fmt: skip
