"""Views of the original, de-duplicated by the rules of live traffic.

A viewer's key is the keyed hash Stich computes for a signed-in user
(``stich.analytics.viewer.viewer_key``), the window is the
``STICH_VIEW_DEDUP_WINDOW_SECONDS`` window holding the view, and the insert skips a
(window, app, viewer) already there, so a viewer counts once per window. The original
kept no client address or user agent, so nothing ties two anonymous view rows to one
visitor: each counts as its own visitor (keyed by its original row id) rather than all
anonymous views of an app collapsing into one. Bots never count, as in live traffic.

This is the one table of millions of rows, so its loop reads plain tuples and keeps the
per-row work to lookups in caches (viewer keys per user, origins per referrer, the
timestamp text per hour).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from functools import lru_cache, partial
from operator import itemgetter
from typing import Any

from stich.analytics.models import VIEWER_KEY_LENGTH
from stich.analytics.viewer import Viewer, referrer_origin, viewer_key
from stich.auth.models import DeviceType
from stich.db.base import utcnow
from stich.importer.context import ImportContext
from stich.importer.source import Source
from stich.importer.values import BadValue, epoch
from stich.importer.writer import Column

# The de-duplication key first, in its order (window, app, viewer): a batch sorts into
# index order, and neighbouring rows land on the same B-tree pages.
VIEW_COLUMNS: list[Column] = [
    ("window_start", "bigint"), ("app_id", "varchar"), ("viewer_key", "varchar"),
    ("referrer_origin", "varchar"), ("device_type", "varchar"), ("viewed_at", "timestamptz"),
]  # fmt: skip
READ = ("app_id", "user_id", "referrer", "device_type", "viewed_at", "id")
BOT = "bot (live traffic never counts bots)"
ORPHAN = "orphan: app not imported"
_KEY = itemgetter(0, 1, 2)  # (window, app, viewer)
# Minutes and seconds of an hour as UTCDateTime's SQLite text ends: "MM:SS.000000".
_MMSS = [f"{m:02d}:{s:02d}.000000" for m in range(60) for s in range(60)]


@lru_cache(maxsize=64)
def _device(value: Any) -> str:
    device = str(value or "unknown").strip().lower()
    return device if device in DeviceType._value2member_map_ else DeviceType.UNKNOWN.value


class _Keys:
    """Viewer keys: per signed-in user as live traffic computes them; per row otherwise."""

    def __init__(self, ctx: ImportContext) -> None:
        hasher = ctx.hasher
        today = utcnow().date()  # a signed-in viewer's key does not depend on the day

        @lru_cache(maxsize=65536)
        def user(user_id: str) -> str:
            return viewer_key(hasher, Viewer(user_id=user_id), app_id="", day=today)

        self.user = user
        # Keyed BLAKE2b (the key derived from the server key): a third of HMAC's cost.
        secret = hashlib.sha256(b"viewer:imported-visitor\x00" + ctx.settings.server_key_bytes())
        self._visitor = partial(
            hashlib.blake2b, key=secret.digest(), digest_size=VIEWER_KEY_LENGTH // 2
        )

    def visitor(self, view_id: Any) -> str:
        return self._visitor(str(view_id).encode()).hexdigest()


class _Stamps:
    """``viewed_at`` as the target stores it, from epoch seconds."""

    def __init__(self, sqlite: bool) -> None:
        self.sqlite = sqlite
        self._hours: dict[int, str] = {}

    def __call__(self, seconds: int) -> Any:
        if not self.sqlite:
            return datetime.fromtimestamp(seconds, UTC)
        hour, rest = divmod(seconds, 3600)
        prefix = self._hours.get(hour)
        if prefix is None:
            at = datetime.fromtimestamp(hour * 3600, UTC)
            prefix = self._hours[hour] = at.strftime("%Y-%m-%d %H:")
        return prefix + _MMSS[rest]


def import_views(source: Source, ctx: ImportContext) -> None:
    report = ctx.report["views"]
    window = ctx.settings.view_dedup_window_seconds
    keys, stamp = _Keys(ctx), _Stamps(ctx.encode.dialect == "sqlite")
    origin = lru_cache(maxsize=4096)(referrer_origin)
    app_ids, user_ids, aliases = ctx.app_ids, ctx.user_ids, ctx.aliases
    seen = _Seen(window) if ctx.dry_run else None
    for batch in source.tuples("app_views", READ, ctx.batch_size):
        report.read += len(batch)
        rows: list[tuple[Any, ...]] = []
        for app_id, original_user, referrer, device_raw, viewed, view_id in batch:
            if app_id not in app_ids:
                report.reject(ORPHAN, view_id)
                continue
            device = _device(device_raw)
            if device == "bot":
                report.reject(BOT, view_id)
                continue
            try:
                seconds = viewed if type(viewed) is int and viewed >= 0 else epoch(viewed)
            except BadValue as exc:
                report.reject(str(exc), view_id)
                continue
            if seconds is None:
                report.reject("no viewed_at", view_id)
                continue
            user_id = aliases.get(original_user, original_user) if original_user else None
            if user_id is not None and user_id in user_ids:
                key = keys.user(user_id)
            else:  # anonymous, or a user who was not imported
                key = keys.visitor(view_id)
            start = seconds - seconds % window
            rows.append((start, app_id, key, origin(referrer), device, stamp(seconds)))
        _write(ctx, rows, seen)
        ctx.on_rows("app_views", report.read)


class _Seen:
    """A dry run's stand-in for the unique key: the (window, app, viewer) keys of the
    latest windows. Rows come in time order, so older windows can be forgotten (a row
    out of that order, with a TEXT timestamp, is then counted as new)."""

    def __init__(self, window: int) -> None:
        self.window = window
        self.keys: set[tuple[Any, ...]] = set()
        self.latest = 0

    def new(self, row: tuple[Any, ...]) -> bool:
        if row[0] > self.latest:
            self.latest = row[0]
            self.keys = {k for k in self.keys if k[0] > self.latest - 2 * self.window}
        key = _KEY(row)
        if key in self.keys:
            return False
        self.keys.add(key)
        return True


def _write(ctx: ImportContext, rows: list[tuple[Any, ...]], seen: _Seen | None) -> None:
    report = ctx.report["views"]
    rows.sort(key=_KEY)  # the de-duplication key's order, as the live ingest feeds rows
    if seen is not None:  # a dry run: count what the unique key would collapse
        new = sum(1 for row in rows if seen.new(row))
        report.imported += new
        report.merged += len(rows) - new
        return
    if not rows:
        return
    before = report.rejected_total
    with ctx.writer() as w:
        n = w.insert("app_views", VIEW_COLUMNS, rows, lambda i, reason: report.reject(reason))
    report.imported += n
    report.merged += len(rows) - n - (report.rejected_total - before)  # collapsed
