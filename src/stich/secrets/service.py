"""Secrets: store, list, reveal, change and delete a user's provider keys; rotate and verify.

Ciphertext never leaves this module: callers get metadata (:class:`SecretOut`) or, from
:meth:`SecretService.reveal` only, the decrypted value inside a SecretStr.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import SecretStr
from sqlalchemy.orm import Session

from stich.audit.service import AuditService, RequestMeta
from stich.auth.principal import Principal
from stich.crypto.vault import (
    DecryptionError,
    Envelope,
    SecretBinding,
    Vault,
)
from stich.db import Database
from stich.db.base import new_id, utcnow
from stich.db.pagination import Page, decode_cursor, encode_cursor
from stich.errors import Conflict, Invalid, InvalidInput, NotFound, Unauthorized
from stich.secrets.models import UserSecret
from stich.secrets.repository import AnyRow, SecretRepository
from stich.secrets.schemas import SecretCreate, SecretOut, SecretRevealed, SecretUpdate

RESOURCE = "secret"
LIST_SORT = "created"
PREVIEW_CHARS = 4  # at most this many from each end
PREVIEW_GAP = "…"
_ID = re.compile(r"[0-9A-Za-z_-]{1,64}")


def preview_of(value: str) -> str:
    """The first and last few characters, together never more than a quarter of the value."""
    shown = min(2 * PREVIEW_CHARS, len(value) // 4)
    head, tail = (shown + 1) // 2, shown // 2
    return value[:head] + PREVIEW_GAP + (value[-tail:] if tail else "")


def binding_of(secret: UserSecret | AnyRow) -> SecretBinding:
    return SecretBinding(secret_id=secret.id, user_id=secret.user_id, provider=secret.provider)


def _not_found(secret_id: str) -> NotFound:
    return NotFound(f"no secret {secret_id}", code="secret_not_found")


@dataclass(frozen=True)
class Reveal:
    """The outcome of a reveal: the value, or the decryption failure that was audited.

    A failure is returned rather than raised so the unit of work still commits its audit
    entry; :meth:`unwrap` raises it once the transaction is over.
    """

    revealed: SecretRevealed | None = None
    failure: DecryptionError | None = None

    def unwrap(self) -> SecretRevealed:
        if self.failure is not None:
            raise self.failure
        assert self.revealed is not None
        return self.revealed


class SecretService:
    def __init__(self, session: Session, vault: Vault, meta: RequestMeta | None = None) -> None:
        self.repo = SecretRepository(session)
        self.vault = vault
        self.audit = AuditService(session, meta)

    def create(self, principal: Principal, data: SecretCreate) -> SecretOut:
        owner_id = _owner(principal)
        now = utcnow()
        _check_expiry(data.expires_at, now)
        value = data.value.get_secret_value()
        secret = UserSecret(
            id=new_id(),
            user_id=owner_id,
            provider=data.provider,
            secret_type=data.secret_type,
            display_name=data.display_name,
            expires_at=data.expires_at,
            preview=preview_of(value),
            is_active=True,
            usage_count=0,
        )
        secret.ciphertext = self.vault.encrypt(value, binding_of(secret))
        secret.key_id = self.vault.active_key_id
        self.repo.add(secret)
        self._record("secret.create", principal, secret, new=_described(secret))
        return SecretOut.from_row(secret, now)

    def list(
        self,
        principal: Principal,
        *,
        limit: int = 50,
        cursor: str | None = None,
        provider: str | None = None,
    ) -> Page[SecretOut]:
        rows = self.repo.list_owned(
            _owner(principal), limit=limit + 1, provider=provider, before=_after_cursor(cursor)
        )
        has_more = len(rows) > limit
        rows = rows[:limit]
        now = utcnow()
        next_cursor = (
            encode_cursor(LIST_SORT, [rows[-1].created_at, rows[-1].id]) if has_more else None
        )
        items = [SecretOut.from_row(row, now) for row in rows]
        return Page(items=items, next_cursor=next_cursor, has_more=has_more)

    def get(self, principal: Principal, secret_id: str) -> SecretOut:
        return SecretOut.from_row(self._owned(principal, secret_id), utcnow())

    def reveal(self, principal: Principal, secret_id: str) -> Reveal:
        """Decrypt for the owner, count the use and audit it; refuse inactive or expired."""
        secret = self._owned(principal, secret_id, for_update=True)
        now = utcnow()
        _check_usable(secret, now)
        try:
            value = self.vault.decrypt(secret.ciphertext or b"", binding_of(secret))
        except DecryptionError as failure:
            self._record_decrypt_failure(principal, secret, failure)
            return Reveal(failure=failure)
        usage_count, used_at = self.repo.record_use(secret.id, now)
        self._record("secret.reveal", principal, secret, new={"usage_count": usage_count})
        revealed = SecretRevealed(
            id=secret.id,
            provider=secret.provider,
            value=SecretStr(value),
            usage_count=usage_count,
            last_used_at=used_at,
        )
        return Reveal(revealed=revealed)

    def update(self, principal: Principal, secret_id: str, data: SecretUpdate) -> SecretOut:
        secret = self._owned(principal, secret_id, for_update=True)
        now = utcnow()
        before = _described(secret)
        if data.display_name is not None:
            secret.display_name = data.display_name
        if data.is_active is not None:
            secret.is_active = data.is_active
        if data.sets_expiry:
            _check_expiry(data.expires_at, now)
            secret.expires_at = data.expires_at
        if data.value is not None:
            self._replace_value(principal, secret, data.value)
        after = _described(secret)
        changed = [name for name in after if after[name] != before[name] and name != "key_id"]
        if changed:
            self._record(
                "secret.update",
                principal,
                secret,
                old={name: before[name] for name in changed},
                new={name: after[name] for name in changed},
            )
        self.repo.session.flush()
        return SecretOut.from_row(secret, now)

    def delete(self, principal: Principal, secret_id: str) -> None:
        """Wipe the ciphertext and mark the secret deleted; the audit entry stays."""
        secret = self._owned(principal, secret_id)
        if not self.repo.wipe(_owner(principal), secret_id, utcnow()):
            raise _not_found(secret_id)  # deleted concurrently
        self._record("secret.delete", principal, secret, old=_described(secret))

    def _replace_value(self, principal: Principal, secret: UserSecret, value: SecretStr) -> None:
        old_key_id = secret.key_id
        plaintext = value.get_secret_value()
        secret.ciphertext = self.vault.encrypt(plaintext, binding_of(secret))
        secret.key_id = self.vault.active_key_id
        secret.preview = preview_of(plaintext)
        self._record(
            "secret.replace",
            principal,
            secret,
            old={"key_id": old_key_id},
            new={"key_id": secret.key_id},
        )

    def _owned(
        self, principal: Principal, secret_id: str, *, for_update: bool = False
    ) -> UserSecret:
        secret = self.repo.get_owned(_owner(principal), secret_id, for_update=for_update)
        if secret is None:
            raise _not_found(secret_id)
        return secret

    def _record(
        self,
        action: str,
        principal: Principal | None,
        secret: UserSecret | AnyRow,
        *,
        old: dict[str, Any] | None = None,
        new: dict[str, Any] | None = None,
    ) -> None:
        self.audit.record(
            action,
            actor=principal,
            subject_user_id=secret.user_id,
            resource_type=RESOURCE,
            resource_id=secret.id,
            old=old,
            new=new,
        )

    def _record_decrypt_failure(
        self, principal: Principal | None, secret: UserSecret | AnyRow, failure: DecryptionError
    ) -> None:
        self._record(
            "secret.decrypt_failed",
            principal,
            secret,
            new={"reason": failure.reason, "error": failure.code},
        )


def _after_cursor(cursor: str | None) -> tuple[datetime, str] | None:
    if cursor is None:
        return None
    created_at, secret_id = decode_cursor(cursor, LIST_SORT, (datetime, str))
    if not _ID.fullmatch(secret_id):  # e.g. a NUL byte, which PostgreSQL text refuses
        raise InvalidInput("cursor is not valid for this listing", code="invalid_cursor")
    return created_at, secret_id


def _owner(principal: Principal) -> str:
    if not principal.is_user or principal.user_id is None:
        raise Unauthorized("secrets belong to signed-in accounts", code="account_required")
    return principal.user_id


def _check_expiry(expires_at: datetime | None, now: datetime) -> None:
    if expires_at is not None and expires_at <= now:
        raise Invalid("expires_at must be in the future", code="expiry_in_past")


def _check_usable(secret: UserSecret, now: datetime) -> None:
    if not secret.is_active:
        raise Conflict(
            "this secret is deactivated; reactivate it (PATCH is_active=true) to reveal it",
            code="secret_inactive",
        )
    if secret.expires_at is not None and secret.expires_at <= now:
        raise Conflict(
            "this secret has expired; set a later expires_at or replace it to use it again",
            code="secret_expired",
        )


def _described(secret: UserSecret) -> dict[str, Any]:
    """What the audit log may say about a secret: metadata, never the value or preview."""
    return {
        "provider": secret.provider,
        "secret_type": secret.secret_type.value,
        "display_name": secret.display_name,
        "is_active": secret.is_active,
        "expires_at": secret.expires_at.isoformat() if secret.expires_at else None,
        "key_id": secret.key_id,
    }


# Maintenance jobs. Unlike the service above they own their transactions (they are run
# from the command line): each batch is one short write, so they can be interrupted at
# any point and run again, and live traffic is never blocked for long.


@dataclass
class RotationReport:
    active_key_id: str
    pending: int = 0  # not under the active key when the run started
    rotated: int = 0
    skipped: int = 0  # changed concurrently; a later run picks them up if still needed
    failures: dict[str, str] = field(default_factory=dict)  # secret id -> reason
    stopped_early: bool = False


@dataclass
class VerifyReport:
    active_key_id: str
    checked: int = 0
    not_under_active: int = 0
    failures: dict[str, str] = field(default_factory=dict)  # secret id -> reason

    @property
    def clean(self) -> bool:
        return not self.failures


RowCallback = Callable[[str], None]


def count_pending_rotation(db: Database, vault: Vault) -> int:
    with db.read("fresh") as uow:
        return SecretRepository(uow.session).count_stored(not_under_key=vault.active_key_id)


def rotate_keys(
    db: Database,
    vault: Vault,
    *,
    batch_size: int = 100,
    limit: int | None = None,
    on_row: RowCallback | None = None,
) -> RotationReport:
    """Re-encrypt every stored secret not under the ring's active key.

    Each row is swapped by one conditional UPDATE (only if its ciphertext is still the one
    that was read), and each batch commits on its own: an interrupted run leaves every
    row readable under the old or the new key, and the next run carries on. Rows that do
    not decrypt are audited and reported, never overwritten. ``limit`` stops after that
    many rows have been rotated.
    """
    report = RotationReport(active_key_id=vault.active_key_id)
    report.pending = count_pending_rotation(db, vault)
    after_id: str | None = None
    while True:
        with db.write() as uow:
            repo = SecretRepository(uow.session)
            rows = repo.stored_batch(
                after_id=after_id, limit=batch_size, not_under_key=report.active_key_id
            )
            for row in rows:
                if limit is not None and report.rotated >= limit:
                    report.stopped_early = True
                    return report  # leaves the block normally: the batch so far commits
                _rotate_row(uow.session, vault, row, report)
                after_id = row.id
                if on_row is not None:
                    on_row(row.id)
        if len(rows) < batch_size:
            return report


def _rotate_row(session: Session, vault: Vault, row: AnyRow, report: RotationReport) -> None:
    binding = binding_of(row)
    try:
        plaintext = vault.decrypt(row.ciphertext, binding)
    except DecryptionError as failure:
        report.failures[row.id] = failure.reason
        SecretService(session, vault)._record_decrypt_failure(None, row, failure)
        return
    fresh = vault.encrypt(plaintext, binding)
    repo = SecretRepository(session)
    swapped = repo.replace_ciphertext_if_unchanged(
        row.id, old=row.ciphertext, new=fresh, key_id=report.active_key_id
    )
    if swapped:
        report.rotated += 1
    else:
        report.skipped += 1


def count_stored(db: Database) -> int:
    with db.read("fresh") as uow:
        return SecretRepository(uow.session).count_stored()


def verify_secrets(
    db: Database, vault: Vault, *, batch_size: int = 200, on_row: RowCallback | None = None
) -> VerifyReport:
    """Decrypt every stored secret (read-only); failures are reported by id and reason."""
    report = VerifyReport(active_key_id=vault.active_key_id)
    after_id: str | None = None
    while True:
        with db.read("fresh") as uow:
            rows = SecretRepository(uow.session).stored_batch(after_id=after_id, limit=batch_size)
        for row in rows:
            _verify_row(vault, row, report)
            after_id = row.id
            if on_row is not None:
                on_row(row.id)
        if len(rows) < batch_size:
            return report


def _verify_row(vault: Vault, row: AnyRow, report: VerifyReport) -> None:
    report.checked += 1
    try:
        vault.decrypt(row.ciphertext, binding_of(row))
        envelope_key = Envelope.parse(row.ciphertext, secret_id=row.id).key_id
    except DecryptionError as failure:
        report.failures[row.id] = failure.reason
        return
    if envelope_key != row.key_id:
        report.failures[row.id] = "key_id_mismatch"
    elif envelope_key != report.active_key_id:
        report.not_under_active += 1
