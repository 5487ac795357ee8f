"""FastAPI dependencies shared by every router.

They are ``async def`` because they never block: FastAPI runs a plain ``def`` dependency
in its thread pool, and each such hand-off cost a feed request about as much as its SQL
(docs/benchmarks.md, HTTP). Keep them free of I/O.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from stich.api.context import BOOKMARK_HEADER, RequestContext, RequestState, client_ip
from stich.config import Settings
from stich.crypto.tokens import KeyedHasher
from stich.db import Database


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_database(request: Request) -> Database:
    database: Database = request.app.state.database
    return database


async def get_hasher(request: Request) -> KeyedHasher:
    hasher: KeyedHasher = request.app.state.hasher
    return hasher


async def get_context(request: Request) -> RequestContext:
    """The request's context; a malformed X-Stich-Bookmark is a 400 here, before any work."""
    database: Database = request.app.state.database
    state: RequestState = request.state.stich
    raw_bookmark = request.headers.get(BOOKMARK_HEADER)
    bookmark = database.parse_bookmark(raw_bookmark) if raw_bookmark else None
    if bookmark is not None:
        state.bookmark_out = bookmark  # echo it back, so it never goes backwards
    return RequestContext(
        db=database,
        hasher=request.app.state.hasher,
        state=state,
        client_ip=client_ip(request, request.app.state.settings.trusted_proxies),
        user_agent=(request.headers.get("user-agent") or None),
        bookmark_in=bookmark,
    )


Context = Annotated[RequestContext, Depends(get_context)]
