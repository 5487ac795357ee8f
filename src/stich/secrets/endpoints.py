"""HTTP endpoints for secrets (mounted under /api). Owner only: others get 404."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from stich.api.deps import Context
from stich.api.errors import error_responses
from stich.auth.dependencies import CurrentUser, api_key_scopes
from stich.auth.schemas import ApiScope
from stich.config import Settings
from stich.crypto.vault import Vault
from stich.secrets.schemas import (
    PROVIDER_PATTERN,
    SecretCreate,
    SecretOut,
    SecretPage,
    SecretRevealed,
    SecretUpdate,
)
from stich.secrets.service import SecretService

router = APIRouter(
    tags=["secrets"],
    dependencies=[
        Depends(
            api_key_scopes(
                ApiScope.SECRETS_READ, ApiScope.SECRETS_WRITE, read_suffixes=("/reveal",)
            )
        )
    ],
)


def get_vault(request: Request) -> Vault:
    """The app's vault, built once from its settings (the key ring) on first use."""
    vault: Vault | None = getattr(request.app.state, "vault", None)
    if vault is None:
        settings: Settings = request.app.state.settings
        vault = Vault.from_settings(settings)
        request.app.state.vault = vault
    return vault


VaultDep = Annotated[Vault, Depends(get_vault)]
SecretId = Annotated[str, Path(pattern=r"^[0-9A-Za-z_-]{1,64}$", description="The secret's id.")]


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    meanings = {
        400: "Invalid input (e.g. an expiry in the past)",
        401: "Not signed in",
        404: "No such secret for this user (another user's secrets are never visible)",
        409: "Secret inactive, expired, or its stored value fails the integrity check",
        422: "Request validation failed",
        503: "The vault has no key ring, or lacks the key this secret was encrypted under",
    }
    return error_responses(*statuses, meanings=meanings)


@router.post(
    "/secrets", status_code=201, response_model=SecretOut, responses=_errors(400, 401, 422, 503)
)
def create_secret(
    body: SecretCreate, ctx: Context, principal: CurrentUser, vault: VaultDep
) -> SecretOut:
    """Store a provider key encrypted; the response shows only a short preview."""
    with ctx.write() as uow:
        return SecretService(uow.session, vault, ctx.meta).create(principal, body)


@router.get("/secrets", response_model=SecretPage, responses=_errors(401, 422))
def list_secrets(
    ctx: Context,
    principal: CurrentUser,
    vault: VaultDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    provider: Annotated[str | None, Query(pattern=PROVIDER_PATTERN)] = None,
) -> SecretPage:
    """Your secrets, newest first: metadata and previews, never values."""
    with ctx.read("fresh") as uow:
        page = SecretService(uow.session, vault).list(
            principal, limit=limit, cursor=cursor, provider=provider
        )
    return SecretPage(items=page.items, next_cursor=page.next_cursor, has_more=page.has_more)


@router.get("/secrets/{secret_id}", response_model=SecretOut, responses=_errors(401, 404))
def get_secret(
    secret_id: SecretId, ctx: Context, principal: CurrentUser, vault: VaultDep
) -> SecretOut:
    """One secret's metadata and preview."""
    with ctx.read("fresh") as uow:
        return SecretService(uow.session, vault).get(principal, secret_id)


@router.post(
    "/secrets/{secret_id}/reveal",
    response_model=SecretRevealed,
    responses=_errors(401, 404, 409, 503),
)
def reveal_secret(
    secret_id: SecretId,
    ctx: Context,
    principal: CurrentUser,
    vault: VaultDep,
    response: Response,
) -> SecretRevealed:
    """Decrypt the value for its owner. Counts a use and writes an audit entry."""
    response.headers["Cache-Control"] = "no-store"
    with ctx.write() as uow:
        outcome = SecretService(uow.session, vault, ctx.meta).reveal(principal, secret_id)
    # A failed decryption is raised only now, after its audit entry has been committed.
    return outcome.unwrap()


@router.patch(
    "/secrets/{secret_id}", response_model=SecretOut, responses=_errors(400, 401, 404, 422, 503)
)
def update_secret(
    secret_id: SecretId,
    body: SecretUpdate,
    ctx: Context,
    principal: CurrentUser,
    vault: VaultDep,
) -> SecretOut:
    """Rename, replace the value (re-encrypted), (de)activate, or change the expiry."""
    with ctx.write() as uow:
        return SecretService(uow.session, vault, ctx.meta).update(principal, secret_id, body)


@router.delete("/secrets/{secret_id}", status_code=204, responses=_errors(401, 404))
def delete_secret(
    secret_id: SecretId, ctx: Context, principal: CurrentUser, vault: VaultDep
) -> Response:
    """Delete a secret: its ciphertext is wiped; the audit trail keeps the event."""
    with ctx.write() as uow:
        SecretService(uow.session, vault, ctx.meta).delete(principal, secret_id)
    return Response(status_code=204)
