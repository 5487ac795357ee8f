"""Liveness and readiness probes (outside /api)."""

from __future__ import annotations

from alembic.runtime.migration import MigrationContext
from fastapi import APIRouter
from pydantic import BaseModel
from sqlalchemy.exc import SQLAlchemyError

from stich import __version__
from stich.api.deps import Context
from stich.db import migrate
from stich.db.faults import Fault
from stich.errors import Unavailable

router = APIRouter(tags=["ops"])


class Health(BaseModel):
    status: str
    version: str


class Readiness(BaseModel):
    status: str
    backend: str
    revision: list[str]


# HEAD too (load balancers probe with it), kept out of the document: a HEAD answer has
# no body to describe.
@router.head("/healthz", include_in_schema=False)
@router.get("/healthz", response_model=Health, summary="The process is up")
async def healthz() -> Health:  # no I/O: no thread-pool hop for the busiest probe
    return Health(status="ok", version=__version__)


@router.head("/readyz", include_in_schema=False)
@router.get(
    "/readyz",
    response_model=Readiness,
    summary="The database is reachable, migrated to head and taking writes",
    responses={503: {"description": "Not ready; the error says why"}},
)
def readyz(ctx: Context) -> Readiness:
    try:
        # On the read connection: a probe must not open (and pool) a write connection,
        # which during a read-only episode would stay read-only after it ends.
        with ctx.read_fresh() as uow:
            connection = uow.session.connection()
            current = set(MigrationContext.configure(connection).get_current_heads())
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
    episode = ctx.db.write_health.current()
    if episode is not None:  # full or read-only storage: reads work, writes do not
        raise Unavailable(
            "writes are failing: the database is "
            + ("out of space" if episode.fault is Fault.STORAGE_FULL else "read-only"),
            code=episode.fault.value,
            details={
                "reason": "recent_write_failure",
                "error_code": episode.error_code,
                "failed_writes": episode.failures,
            },
        )
    return Readiness(status="ready", backend=ctx.db.backend, revision=sorted(current))
