"""Where a hot read runs: on the event loop when it cannot wait, else in the thread pool.

FastAPI runs a sync endpoint in its thread pool. For a read of a few hundred microseconds
the hand-off costs more than the read: besides queueing the call and waking a worker, the
event loop and the worker then take turns holding the GIL each time the driver lets go of
it (docs/benchmarks.md, HTTP). A SQLite read in WAL mode never waits for a writer (it
reads its own snapshot; only writers queue for the lock), so a *bounded* read (one row by
key, one page down an index, never a scan) runs on the loop with no hand-off at all. A
PostgreSQL read waits for the server's answer, and the process's other requests must go
on meanwhile, so it goes to the pool, as does anything that can wait on another service
(a Redis view queue). Writes always go to the pool (they wait for the write lock).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from starlette.requests import Request

from stich.config import Settings
from stich.db import Database

T = TypeVar("T")


def reads_never_wait(database: Database, settings: Settings) -> bool:
    """True when a bounded read, and queueing the view it counts, cannot wait on anything:
    SQLite with the in-process view queue."""
    return database.backend == "sqlite" and not settings.view_queue_url


_executors: list[ThreadPoolExecutor] = []  # at most one
_executors_lock = threading.Lock()


def read_executor(settings: Settings) -> ThreadPoolExecutor:
    """The process's threads for hot reads that do not run inline, created on first use:
    as many as a read pool has connections (more would only queue for one). One per
    process, whatever the number of apps in it (tests build many)."""
    with _executors_lock:
        if not _executors:
            workers = settings.pool_size
            _executors.append(ThreadPoolExecutor(workers, thread_name_prefix="stich-read"))
        return _executors[0]


def inline_reads(request: Request) -> bool:
    inline: bool = request.app.state.inline_reads
    return inline


async def run_bounded_read(request: Request, read: Callable[..., T], *args: object) -> T:
    """``read(*args)`` on the event loop where reads never wait, else in the read threads.
    Only for reads whose cost is bounded whatever the data (see the module doc)."""
    if inline_reads(request):
        return read(*args)
    return await run_in_read_threads(request, read, *args)


async def run_in_read_threads(request: Request, read: Callable[..., T], *args: object) -> T:
    """``read(*args)`` on the app's read threads, in this request's context (statement
    counts and the like are context variables). A plain executor hand-off costs about
    half of anyio's (its capacity limiter, cancel scope and task lookups) per request."""
    executor: ThreadPoolExecutor = request.app.state.read_executor
    call = functools.partial(contextvars.copy_context().run, read, *args)
    return await asyncio.get_running_loop().run_in_executor(executor, call)
