"""Liveness and readiness probes (outside /api)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from stich import __version__
from stich.api.deps import Context
from stich.db import migrate
from stich.errors import Unavailable

router = APIRouter(tags=["ops"])


class Health(BaseModel):
    status: str
    version: str


class Readiness(BaseModel):
    status: str
    backend: str
    revision: list[str]


@router.get("/healthz", response_model=Health, summary="The process is up")
def healthz() -> Health:
    return Health(status="ok", version=__version__)


@router.get(
    "/readyz",
    response_model=Readiness,
    summary="The database is reachable and migrated to head",
    responses={503: {"description": "Not ready; the error says why"}},
)
def readyz(ctx: Context) -> Readiness:
    try:
        with ctx.read_fresh() as uow:
            uow.session.execute(text("SELECT 1"))
        current = migrate.current_revisions(ctx.db.primary)
    except SQLAlchemyError as exc:
        raise Unavailable(
            "the database is not reachable", details={"reason": type(exc).__name__}
        ) from exc
    heads = migrate.head_revisions()
    if current != heads:
        raise Unavailable(
            "the database is not at the latest migration; run `stich db upgrade`",
            code="migration_pending",
            details={"current": sorted(current), "head": sorted(heads)},
        )
    return Readiness(status="ready", backend=ctx.db.backend, revision=sorted(current))
