"""The workloads of ``stich bench``, each run in-process through our services exactly as
the endpoint runs it, after a warm-up (see :mod:`stich.bench.runner`).

Feed workloads run three ways on the same data in the same run:

- **ours**: a read unit of work and :meth:`GalleryService.feed`, as ``GET /apps/public``
  does (the response model is left out: it is presentation, not data access);
- **floor**: the statements that call sent (captured at the cursor), replayed through the
  raw driver (:mod:`stich.bench.floor`);
- **original**: the original system's query shape (:mod:`stich.bench.original`).

Write workloads (views, stars, login, transfer, reveal) change the bench database the
way the API would: views add to the counts, stars and transfers are undone by the next
operation, logins add sessions and audit entries. ``stich db verify`` stays clean.
"""

from __future__ import annotations

import fnmatch
import itertools
import os
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from pydantic import SecretStr
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.requests import Request

from stich.analytics.models import AppView
from stich.analytics.service import AnalyticsPeriod, AnalyticsService, ViewEvent
from stich.analytics.viewer import Viewer
from stich.api.context import RequestContext, RequestState
from stich.apps.models import App
from stich.apps.service import AppService, ListParams
from stich.apps.visibility import publicly_visible
from stich.audit.service import RequestMeta
from stich.auth.dependencies import get_principal
from stich.auth.outcomes import AuthPolicy, Client, Refused
from stich.auth.principal import Principal
from stich.auth.service import AuthService
from stich.bench import original
from stich.bench.floor import Floor
from stich.bench.runner import Budget, Measurement, Report, measure
from stich.bench.seed import SEED_PASSWORD, Zipf
from stich.config import VAULT_KEY_BYTES, Settings
from stich.crypto.passwords import passwords_for
from stich.crypto.tokens import KeyedHasher
from stich.crypto.vault import Vault
from stich.db import Database
from stich.db.base import utcnow
from stich.gallery import search
from stich.gallery.feed import PERIOD_DAYS, FeedPeriod, FeedRequest, FeedSort
from stich.gallery.models import Star
from stich.gallery.repository import Reaction
from stich.gallery.service import GalleryService
from stich.secrets.schemas import SecretCreate
from stich.secrets.service import SecretService
from stich.users.models import Role, User

PAGE_SIZE = 20
FAR_PAGE = 200
FRAMEWORK = "react"
SEARCH = "todo"
USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64) stich-bench/1.0"
VIEW_BATCH = 1000
BENCH_SECRETS = 20
BENCH_SESSIONS = 50
LOGIN_USERS = 50

FAST = Budget()
ORIGINAL = Budget(warmup=1, min_iterations=5, min_seconds=0.0, max_seconds=5.0)
SLOW = Budget(warmup=2, min_iterations=10, min_seconds=0.5, max_seconds=5.0)
LIVE = Budget(warmup=2, min_iterations=10, min_seconds=0.3, max_seconds=3.0)
QUICK = Budget(warmup=1, min_iterations=2, min_seconds=0.0, max_seconds=0.2)


# -- feed cases ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FeedCase:
    sort: FeedSort
    period: FeedPeriod = FeedPeriod.ALL
    framework: str | None = None
    q: str | None = None

    @property
    def name(self) -> str:
        variant = "+".join(v for v, on in (("fw", self.framework), ("q", self.q)) if on)
        return f"feed/{self.sort}/{self.period}" + (f"/{variant}" if variant else "")

    def request(self, cursor: str | None = None, limit: int = PAGE_SIZE) -> FeedRequest:
        """The FeedRequest ``GET /apps/public`` builds from these query parameters."""
        terms = tuple(search.search_terms(self.q)) if self.q else ()
        return FeedRequest(
            sort=self.sort,
            period=self.period,
            framework=self.framework,
            search_terms=terms,
            limit=limit,
            cursor=cursor,
        )

    def since(self, today: date) -> datetime | None:
        """The start of the window the original counts over (None: all time)."""
        if self.sort in (FeedSort.RECENT, FeedSort.UPDATED) or self.period is FeedPeriod.ALL:
            return None
        first_day = today - timedelta(days=PERIOD_DAYS[self.period] - 1)
        return datetime.combine(first_day, time(), tzinfo=UTC)


def feed_cases() -> list[FeedCase]:
    """Every sort and period, each plain, by framework, by search and by both.

    ``recent`` and ``updated`` ignore the period, so they run once (``all``).
    """
    combos = [(FeedSort.RECENT, FeedPeriod.ALL), (FeedSort.UPDATED, FeedPeriod.ALL)]
    combos += [
        (sort, period)
        for sort in (FeedSort.POPULAR, FeedSort.VIEWED, FeedSort.TRENDING)
        for period in (FeedPeriod.TODAY, FeedPeriod.WEEK, FeedPeriod.MONTH, FeedPeriod.ALL)
    ]
    variants: list[tuple[str | None, str | None]] = [
        (None, None),
        (FRAMEWORK, None),
        (None, SEARCH),
        (FRAMEWORK, SEARCH),
    ]
    return [FeedCase(s, p, fw, q) for s, p in combos for fw, q in variants]


def gallery(session: Session, settings: Settings, *, live: bool = False) -> GalleryService:
    """The GalleryService ``GET /apps/public`` uses; ``live`` ignores ranking snapshots
    (as when they are older than the max age), so windowed sorts sum the rollups."""
    max_age = timedelta(0) if live else timedelta(seconds=settings.feed_ranking_max_age_seconds)
    return GalleryService(session, ranking_max_age=max_age)


def ours_page_ids(db: Database, case: FeedCase, limit: int = PAGE_SIZE) -> list[str]:
    with db.read("fast") as uow:
        page = gallery(uow.session, db.settings).feed(case.request(limit=limit), None)
    return [item.id for item in page.items]


def original_page_ids(
    db: Database, case: FeedCase, today: date, *, limit: int = PAGE_SIZE, offset: int = 0
) -> list[str]:
    stmt = original.feed(
        case.sort,
        since=case.since(today),
        framework=case.framework,
        q=case.q,
        backend=db.backend,
    )
    params = original.feed_params(
        since=case.since(today), framework=case.framework, q=case.q, limit=limit, offset=offset
    )
    with db.read("fast") as uow:
        return [row[0] for row in uow.session.execute(stmt, params)]


# -- fixtures: who and what the workloads act on ------------------------------------------


@dataclass(frozen=True)
class Fixtures:
    heavy_owner: Principal
    heavy_owner_apps: int
    hot_app_id: str
    hot_app_owner: Principal
    hot_app_views: int
    star_user: Principal
    star_app_id: str
    transfer_app_id: str
    transfer_parties: tuple[tuple[Principal, str], tuple[Principal, str]]  # (actor, username)
    login_emails: list[str]
    public_app_ids: list[str]
    dataset: dict[str, int]


def _principal(user_id: str, role: str) -> Principal:
    return Principal.user(user_id, Role(role))


def load_fixtures(db: Database) -> Fixtures:
    """Pick the actors and apps from the seeded data (deterministic for a dataset)."""
    listed = publicly_visible()
    with db.read("fresh") as uow:
        s = uow.session
        owner = s.execute(
            select(App.user_id, User.role, func.count().label("n"))
            .join(User, User.id == App.user_id)
            .where(App.deleted_at.is_(None))
            .group_by(App.user_id, User.role)
            .order_by(func.count().desc(), App.user_id)
            .limit(1)
        ).one()
        hot = s.execute(
            select(App.id, App.user_id, App.view_count, User.role)
            .join(User, User.id == App.user_id)
            .where(listed)
            .order_by(App.view_count.desc(), App.id)
            .limit(1)
        ).one()
        users = s.execute(
            select(User.id, User.username, User.email, User.role)
            .where(User.deleted_at.is_(None), User.is_active.is_(True))
            .order_by(User.created_at, User.id)
            .limit(LOGIN_USERS + 3)
        ).all()
        public = list(
            s.scalars(
                select(App.id).where(listed).order_by(App.view_count.desc(), App.id).limit(500)
            )
        )
        star_user = users[0]
        starred = set(s.scalars(select(Star.app_id).where(Star.user_id == star_user.id)))
        star_app = next(app_id for app_id in public if app_id not in starred)
        giver, receiver = users[1], users[2]
        transfer_app = s.execute(
            select(App.id)
            .where(App.user_id == giver.id, App.deleted_at.is_(None))
            .order_by(App.id)
            .limit(1)
        ).scalar_one()
        dataset = {
            "users": _count(s, User),
            "apps": _count(s, App),
            "public_apps": int(s.scalar(select(func.count()).select_from(App).where(listed)) or 0),
            "views": _count(s, AppView),
            "stars": _count(s, Star),
        }
    return Fixtures(
        heavy_owner=_principal(owner.user_id, owner.role),
        heavy_owner_apps=int(owner.n),
        hot_app_id=hot.id,
        hot_app_owner=_principal(hot.user_id, hot.role),
        hot_app_views=int(hot.view_count),
        star_user=_principal(star_user.id, star_user.role),
        star_app_id=star_app,
        transfer_app_id=transfer_app,
        transfer_parties=(
            (_principal(giver.id, giver.role), giver.username),
            (_principal(receiver.id, receiver.role), receiver.username),
        ),
        login_emails=[u.email for u in users[3:]],
        public_app_ids=public,
        dataset=dataset,
    )


def _count(session: Any, model: type[Any]) -> int:
    return int(session.scalar(select(func.count()).select_from(model)) or 0)


# -- the bench ------------------------------------------------------------------------------


Progress = Callable[[str], None]


@dataclass
class Bench:
    settings: Settings
    db: Database
    report: Report
    only: Sequence[str] = ()
    quick: bool = False
    progress: Progress = lambda _name: None
    fixtures: Fixtures = field(init=False)
    floor: Floor = field(init=False)
    today: date = field(init=False)

    def __post_init__(self) -> None:
        self.hasher = KeyedHasher(self.settings.server_key_bytes())
        self.fixtures = load_fixtures(self.db)
        self.floor = Floor(self.db)
        self.today = utcnow().date()
        self.report.context["dataset"] = self.fixtures.dataset

    # -- selection and timing ------------------------------------------------------------

    def wanted(self, name: str) -> bool:
        """``--only``: a name is run when a pattern is a prefix of it or globs it."""
        if not self.only:
            return True
        return any(name.startswith(p) or fnmatch.fnmatchcase(name, p) for p in self.only)

    def budget(self, budget: Budget) -> Budget:
        return QUICK if self.quick else budget

    def time(
        self,
        name: str,
        operation: Callable[[], object],
        *,
        group: str = "ours",
        budget: Budget = FAST,
        note: str = "",
    ) -> Measurement:
        self.progress(f"{name} ({group})")
        return self.report.add(
            measure(name, operation, group=group, budget=self.budget(budget), note=note)
        )

    def run(self) -> None:
        sections: list[tuple[str, Callable[[], None]]] = [
            ("feed", self.feed),
            ("paging/", self.paging),
            ("me-apps", self.my_apps),
            ("analytics", self.analytics),
            ("views/", self.views),
            ("stars/", self.stars),
            ("login", self.login),
            ("auth/", self.bearer),
            ("transfer", self.transfer),
            ("secrets/", self.secrets),
        ]
        try:
            for prefix, section in sections:
                if self._section_wanted(prefix):
                    section()
        finally:
            self.floor.close()

    def _section_wanted(self, prefix: str) -> bool:
        if not self.only:
            return True
        return any(
            prefix.startswith(p) or p.startswith(prefix) or fnmatch.fnmatchcase(prefix, p)
            for p in self.only
        )

    # -- the three ways -------------------------------------------------------------------

    def three_ways(
        self,
        name: str,
        ours: Callable[[], object],
        original_op: Callable[[], object] | None,
        *,
        ours_budget: Budget = FAST,
    ) -> None:
        """Ours, its floor and (when given) the original shape, back to back."""
        mine = self.time(name, ours, budget=ours_budget)
        floor = self.time(name, self.floor.replay(self.floor.capture(ours)), group="floor")
        self.report.ratio(name, mine, floor, "ours/floor")
        if original_op is not None:
            theirs = self.time(name, original_op, group="original", budget=ORIGINAL)
            self.report.ratio(name, mine, theirs, "ours/original")

    # -- feed -----------------------------------------------------------------------------

    def _ours_feed(self, request: FeedRequest, *, live: bool = False) -> Callable[[], object]:
        def run() -> object:
            with self.db.read("fast") as uow:
                return gallery(uow.session, self.settings, live=live).feed(request, None)

        return run

    def _original_feed(self, case: FeedCase, offset: int = 0) -> Callable[[], object]:
        def run() -> object:
            return original_page_ids(self.db, case, self.today, offset=offset)

        return run

    def feed(self) -> None:
        for case in feed_cases():
            if self.wanted(case.name):
                self.three_ways(
                    case.name, self._ours_feed(case.request()), self._original_feed(case)
                )
        # Windowed sorts without a fresh snapshot (the fallback when maintenance lags).
        for case in feed_cases():
            name = case.name.replace("feed/", "feed-live/", 1)
            if case.request().scored and not (case.framework or case.q) and self.wanted(name):
                ours = self._ours_feed(case.request(), live=True)
                self.three_ways(name, ours, self._original_feed(case), ours_budget=LIVE)

    def paging(self) -> None:
        """Page 1 and page 200 through cursors; the original's OFFSET page 200.

        A dataset with fewer pages is measured at its last page (the name says which).
        """
        cases = [
            FeedCase(FeedSort.RECENT),
            FeedCase(FeedSort.POPULAR),
            FeedCase(FeedSort.TRENDING, FeedPeriod.WEEK),
        ]
        for case in cases:
            name = f"paging/{case.sort}/{case.period}"
            if not self.wanted(name):
                continue
            self.progress(f"{name}: walking {FAR_PAGE - 1} pages for the cursor")
            cursor, page = self._walk(case, FAR_PAGE - 1)
            first = self.time(f"{name}/page1", self._ours_feed(case.request()))
            far_name = f"{name}/page{page}"
            far = self.time(far_name, self._ours_feed(case.request(cursor)))
            self.report.ratio(far_name, far, first, f"page{page}/page1")
            floor_op = self.floor.replay(self.floor.capture(self._ours_feed(case.request(cursor))))
            floor = self.time(far_name, floor_op, group="floor")
            self.report.ratio(far_name, far, floor, "ours/floor")
            offset = (page - 1) * PAGE_SIZE
            theirs = self.time(
                far_name, self._original_feed(case, offset), group="original", budget=ORIGINAL
            )
            self.report.ratio(far_name, far, theirs, "ours/original")

    def _walk(self, case: FeedCase, pages: int) -> tuple[str | None, int]:
        """The cursor to the page after ``pages`` pages (or to the last page), and its
        page number."""
        cursor: str | None = None
        walked = 0
        with self.db.read("fast") as uow:
            service = gallery(uow.session, self.settings)
            while walked < pages:
                following = service.feed(case.request(cursor), None).next_cursor
                if following is None:
                    break
                cursor, walked = following, walked + 1
        return cursor, walked + 1

    # -- an owner's reads -----------------------------------------------------------------

    def my_apps(self) -> None:
        owner = self.fixtures.heavy_owner

        def ours() -> object:
            with self.db.read("fresh") as uow:
                return AppService(uow.session).my_apps(owner, ListParams())

        note = f"owner of {self.fixtures.heavy_owner_apps} apps; page of 20 + total"
        mine = self.time("me-apps", ours, note=note)
        floor = self.time("me-apps", self.floor.replay(self.floor.capture(ours)), group="floor")
        self.report.ratio("me-apps", mine, floor, "ours/floor")

    def analytics(self) -> None:
        f = self.fixtures

        def ours() -> object:
            with self.db.read("fresh") as uow:
                service = AnalyticsService(uow.session, self.hasher)
                return service.app_analytics(f.hot_app_owner, f.hot_app_id, AnalyticsPeriod.MONTH)

        since = datetime.combine(self.today - timedelta(days=29), time(), tzinfo=UTC)
        statements = original.analytics(self.db.backend)

        def theirs() -> object:
            with self.db.read("fresh") as uow:
                params = {"app_id": f.hot_app_id, "since": since}
                return [uow.session.execute(stmt, params).all() for stmt in statements]

        name = "analytics/month"
        note = f"most-viewed app ({f.hot_app_views} views)"
        mine = self.time(name, ours, note=note)
        floor = self.time(name, self.floor.replay(self.floor.capture(ours)), group="floor")
        self.report.ratio(name, mine, floor, "ours/floor")
        other = self.time(name, theirs, group="original", budget=ORIGINAL, note=note)
        self.report.ratio(name, mine, other, "ours/original")

    # -- writes ---------------------------------------------------------------------------

    def _analytics_service(self, session: Any) -> AnalyticsService:
        return AnalyticsService(
            session, self.hasher, window_seconds=self.settings.view_dedup_window_seconds
        )

    def views(self) -> None:
        visitors = itertools.count(1)
        hot = self.fixtures.hot_app_id
        apps = self.fixtures.public_app_ids

        # Visitors new to this run too: a view repeated within its window would not count.
        user_agent = f"{USER_AGENT} run/{os.urandom(6).hex()}"

        def visitor() -> Viewer:
            n = next(visitors)
            return Viewer(
                client_ip=f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}", user_agent=user_agent
            )

        def single() -> object:
            with self.db.write() as uow:
                result = self._analytics_service(uow.session).record_view(
                    None, hot, visitor(), referrer="https://news.example.test/item"
                )
            assert result.recorded, "a new visitor's view must count"
            return result

        # Which app each view is of: Zipf-skewed over the most-viewed apps, as in the
        # dataset (a batch of 1,000 touches a few hundred apps, as real traffic would).
        popular = Zipf(len(apps), 1.1, random.Random(7))  # noqa: S311 - not security

        def batch() -> object:
            now = utcnow()
            events = [
                ViewEvent(app_id=apps[popular.sample()], viewer=visitor(), at=now)
                for _ in range(VIEW_BATCH)
            ]
            with self.db.write() as uow:
                return self._analytics_service(uow.session).record_views(events)

        if self.wanted("views/single"):
            self.time("views/single", single, note="a new visitor each time")
        if self.wanted("views/batch"):
            m = self.time("views/batch", batch, note=f"{VIEW_BATCH} views per transaction")
            m.note += f"; {m.ops_per_second * VIEW_BATCH:,.0f} views/s"

    def stars(self) -> None:
        user, app_id = self.fixtures.star_user, self.fixtures.star_app_id

        def react(on: bool) -> None:
            with self.db.write() as uow:
                GalleryService(uow.session).react(Reaction.STAR, user, app_id, on=on)

        def toggle() -> None:
            react(True)
            react(False)

        self.time("stars/toggle", toggle, note="PUT + DELETE (two transactions)")

    def login(self) -> None:
        emails = itertools.cycle(self.fixtures.login_emails)
        passwords = passwords_for(self.settings)
        policy = AuthPolicy.from_settings(self.settings)
        meta = RequestMeta(ip_hash=self.hasher.ip_hash("127.0.0.1"), user_agent=USER_AGENT)
        client = Client(ip="127.0.0.1", user_agent=USER_AGENT)

        def auth(session: Any) -> AuthService:
            return AuthService(session, meta, policy, self.hasher)

        def sign_in() -> None:
            # The steps of POST /auth/login: read, check the password outside any
            # transaction, write the outcome.
            with self.db.read("fresh") as uow:
                attempt = auth(uow.session).start_login(next(emails))
            ok = passwords.verify(attempt.password_hash, SEED_PASSWORD)
            stored = attempt.password_hash
            upgraded = (
                passwords.hash(SEED_PASSWORD)
                if ok and stored and passwords.needs_rehash(stored)
                else None
            )
            with self.db.write() as uow:
                outcome = auth(uow.session).finish_login(
                    attempt,
                    password_ok=ok,
                    upgraded_hash=upgraded,
                    client=client,
                    anonymous_hash=None,
                    now=utcnow(),
                )
            if isinstance(outcome, Refused):
                raise outcome.error

        s = self.settings
        cost = (
            f"argon2id t={s.argon2_time_cost} m={s.argon2_memory_cost}KiB p={s.argon2_parallelism}"
        )
        self.report.context["argon2"] = cost
        self.time("login", sign_in, budget=SLOW, note=cost)

    def session_tokens(self, count: int) -> list[str]:
        """Access tokens of ``count`` fresh sessions, one per seeded account."""
        policy = AuthPolicy.from_settings(self.settings)
        meta = RequestMeta(ip_hash=None, user_agent=USER_AGENT)
        with self.db.read("fresh") as uow:
            user_ids = list(
                uow.session.scalars(
                    select(User.id)
                    .where(User.deleted_at.is_(None), User.is_active.is_(True))
                    .order_by(User.created_at.desc(), User.id)
                    .limit(count)
                )
            )
        with self.db.write() as uow:
            service = AuthService(uow.session, meta, policy, self.hasher)
            client = Client(ip="127.0.0.1", user_agent=USER_AGENT)
            return [service.open_session(u, client, utcnow()).access_token for u in user_ids]

    def bearer(self) -> None:
        """What ``get_principal`` does for ``Authorization: Bearer <access token>``."""
        tokens = itertools.cycle(self.session_tokens(BENCH_SESSIONS))
        state = RequestState(request_id="stich-bench-request")
        ctx = RequestContext(
            self.db, self.hasher, state, client_ip="127.0.0.1", user_agent=USER_AGENT
        )

        def authenticate() -> object:
            header = f"Bearer {next(tokens)}".encode()
            request = Request({"type": "http", "headers": [(b"authorization", header)]})
            principal = get_principal(request, ctx)
            assert principal is not None and principal.is_user
            return principal

        self.time("auth/bearer", authenticate, note="access token -> principal")

    def transfer(self) -> None:
        app_id = self.fixtures.transfer_app_id
        (giver, giver_name), (receiver, receiver_name) = self.fixtures.transfer_parties
        moves = itertools.cycle([(giver, receiver_name), (receiver, giver_name)])
        meta = RequestMeta(ip_hash=None, user_agent=USER_AGENT)

        def move() -> object:
            actor, to_user = next(moves)
            with self.db.write() as uow:
                return AppService(uow.session, meta).transfer(actor, app_id, to_user)

        try:
            self.time("transfer", move, note="A -> B, then B -> A")
        finally:
            # An odd number of moves leaves the app with the receiver: give it back.
            with self.db.read("fresh") as uow:
                holder = uow.session.scalar(select(App.user_id).where(App.id == app_id))
            if holder == receiver.user_id:
                with self.db.write() as uow:
                    AppService(uow.session, meta).transfer(receiver, app_id, giver_name)

    def secrets(self) -> None:
        """Reveal (decrypt, count the use, audit) with a throwaway vault key."""
        vault = Vault({"bench": os.urandom(VAULT_KEY_BYTES)})
        owner = self.fixtures.star_user
        meta = RequestMeta(ip_hash=None, user_agent=USER_AGENT)
        ids: list[str] = []
        with self.db.write() as uow:
            service = SecretService(uow.session, vault, meta)
            for i in range(BENCH_SECRETS):
                created = service.create(
                    owner,
                    SecretCreate(
                        provider="openai",
                        display_name=f"bench key {i}",
                        value=SecretStr(f"sk-bench-{os.urandom(16).hex()}"),
                    ),
                )
                ids.append(created.id)
        cycle = itertools.cycle(ids)

        def reveal() -> object:
            with self.db.write() as uow:
                reveal = SecretService(uow.session, vault, meta).reveal(owner, next(cycle))
            return reveal.unwrap()

        try:
            self.time("secrets/reveal", reveal, note="decrypt + use count + audit")
        finally:
            with self.db.write() as uow:
                service = SecretService(uow.session, vault, meta)
                for secret_id in ids:
                    service.delete(owner, secret_id)
