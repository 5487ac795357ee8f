"""Where an HTTP request's time goes, from a py-spy profile of a server under load.

Record the server's threads while wrk drives one endpoint, then summarise::

    py-spy record --gil --nonblocking --rate 200 --format raw -o feed.raw --pid <pid>
    python -m stich.bench.profile feed.raw [server CPU ms per request]

``--gil`` keeps the samples where a thread held the GIL, i.e. ran Python (or C called
from it); waits for the database or the network are not in them. Each sample goes to the
first category below that any frame of its stack matches; the first eight win wherever
they are on the stack (the endpoint's SQL counts as database even though it runs under
the middleware), the rest are matched from the innermost frame outwards.
"""

from __future__ import annotations

import re
import sys
from collections import Counter

CATEGORIES: list[tuple[str, re.Pattern[str]]] = [
    (label, re.compile(pattern))
    for label, pattern in [
        ("database (SQLAlchemy, driver, unit of work)", r"(sqlalchemy/|sqlite3|psycopg|stich/db/)"),
        ("endpoint: service and response model", r"stich/(gallery|apps|analytics|auth|users)/"),
        (
            "response validation and JSON",
            r"(serialize_response|ModelField\.validate|ModelField\.serialize|"
            r"TypeAdapter\.dump_json|jsonable_encoder|JSONResponse\.render|json/encoder)",
        ),
        ("request validation", r"(request_params_to_args|_validate_value_with_model_field)"),
        ("access log (structlog)", r"structlog/"),
        ("stich dependencies", r"(get_context|get_principal|api_key_scopes|get_settings)"),
        ("rate limiter", r"(RateLimiterStore|/limits/)"),
        (
            "thread-pool hand-offs (both sides)",
            r"(anyio/|starlette/concurrency|WorkerThread|threading\.py|queue\.py|"
            r"concurrent/futures|stich/api/reads)",
        ),
        ("FastAPI dependency solving", r"(solve_dependencies|fastapi/dependencies)"),
        ("request middleware", r"(stich/api/middleware|stich/observability)"),
        ("routing, Request objects, error middleware", r"(starlette/|fastapi/)"),
        ("HTTP protocol (uvicorn, h11, httptools)", r"(uvicorn/|h11/|httptools)"),
        ("event loop and socket I/O", r"(asyncio/|selectors|uvloop)"),
    ]
]
_ANYWHERE = 8


def categorize(frames: list[str]) -> str:
    for label, pattern in CATEGORIES[:_ANYWHERE]:
        if any(pattern.search(frame) for frame in frames):
            return label
    for frame in reversed(frames):
        for label, pattern in CATEGORIES[_ANYWHERE:]:
            if pattern.search(frame):
                return label
    return "other"


def summarise(lines: list[str]) -> Counter[str]:
    """Samples per category, from py-spy's raw (collapsed stack) output."""
    counts: Counter[str] = Counter()
    for line in lines:
        stack, _, samples = line.rstrip("\n").rpartition(" ")
        if stack:
            counts[categorize(stack.split(";"))] += int(samples)
    return counts


def main(argv: list[str]) -> None:
    with open(argv[0]) as raw:
        counts = summarise(raw.readlines())
    cpu_ms = float(argv[1]) if len(argv) > 1 else None
    total = sum(counts.values()) or 1
    for label, samples in counts.most_common():
        share = samples / total
        ms = f"{share * cpu_ms:6.2f} ms" if cpu_ms is not None else ""
        print(f"{100 * share:5.1f}%  {ms}  {label}")


if __name__ == "__main__":
    main(sys.argv[1:])
