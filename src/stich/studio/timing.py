"""Time the Studio dashboard on a database: ``python -m stich.studio.timing URL``.

Serves the Studio in-process (Starlette's test client, no network), signs in an admin and
fetches /admin/ for each period several times, then prints the median and worst server
time (the page's own ``Server-Timing``) and the time the client saw, after the first
look (which reads every day; later ones read today and reuse the days before, see
``stich.studio.past_days``). It adds one admin
account (``studio-timing@example.test``) to the database, so point it at a copy of a
bench database, not at one whose contents you compare. docs/benchmarks.md quotes it.
"""

from __future__ import annotations

import argparse
import statistics
import time

from fastapi.testclient import TestClient
from sqlalchemy import select

from stich.config import Settings
from stich.crypto.passwords import passwords_for
from stich.db import Database
from stich.log import configure_logging
from stich.studio.activity import DashboardPeriod
from stich.studio.app import create_studio_app
from stich.studio.past_days import LONGEST
from stich.users.models import Role, User

EMAIL = "studio-timing@example.test"
PASSWORD = "studio-timing-password"  # noqa: S105 - a throwaway account on a bench copy


def ensure_admin(db: Database, settings: Settings) -> None:
    with db.write() as uow:
        if uow.session.scalar(select(User.id).where(User.email == EMAIL)) is None:
            uow.session.add(
                User(
                    email=EMAIL,
                    username="studio-timing",
                    display_name="Studio Timing",
                    role=Role.ADMIN,
                    password_hash=passwords_for(settings).hash(PASSWORD),
                )
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("database_url", help="e.g. sqlite:///./copy-of-bench.db")
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    settings = Settings(database_url=args.database_url, studio_enabled=True, log_level="WARNING")
    configure_logging(settings)  # warnings only: no access-log line per request
    db = Database(settings)
    ensure_admin(db, settings)
    with TestClient(create_studio_app(settings, db)) as client:
        signed_in = client.post("/admin/login", data={"username": EMAIL, "password": PASSWORD})
        assert signed_in.url.path == "/admin/", "the timing admin could not sign in"
        # The sign-in lands on the dashboard: the first look reads every day of the quarter.
        first = float(signed_in.headers["Server-Timing"].split("dur=")[1])
        print(f"first look (all {LONGEST.days} days read): server {first:.1f} ms")
        for period in DashboardPeriod:
            client.get(f"/admin/?period={period.value}")  # warm the caches once
            server, seen = [], []
            for _ in range(args.runs):
                started = time.perf_counter()
                response = client.get(f"/admin/?period={period.value}")
                seen.append((time.perf_counter() - started) * 1000)
                assert response.status_code == 200, response.status_code
                server.append(float(response.headers["Server-Timing"].split("dur=")[1]))
            print(
                f"period={period.value:>2} days  server median {statistics.median(server):6.1f} ms"
                f"  max {max(server):6.1f} ms  client median {statistics.median(seen):6.1f} ms"
                f"  ({args.runs} runs, {db.backend})"
            )
    db.dispose()


if __name__ == "__main__":
    main()
