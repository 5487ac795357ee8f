"""HTTP endpoints for the audit trail (mounted under /api)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from stich.api.deps import Context
from stich.audit.repository import AuditRepository
from stich.audit.schemas import AuditEventOut, AuditPage
from stich.auth.dependencies import AccountReader
from stich.errors import Unauthorized

router = APIRouter(tags=["audit"])


@router.get(
    "/me/audit",
    response_model=AuditPage,
    responses={status: {"description": "Error"} for status in (401, 403, 422)},
)
def my_audit(
    principal: AccountReader,
    ctx: Context,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> AuditPage:
    """Events about the signed-in account, newest first. Pass ``next_cursor`` as ``cursor``."""
    if principal.user_id is None:
        raise Unauthorized("this needs a signed-in account")
    with ctx.read(fallback="fresh") as uow:
        page = AuditRepository(uow.session).page_for_subject(
            principal.user_id, limit=limit, cursor=cursor
        )
        return AuditPage(
            items=[AuditEventOut.model_validate(event) for event in page.items],
            next_cursor=page.next_cursor,
            has_more=page.has_more,
        )
