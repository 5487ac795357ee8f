"""The view queue on a Redis stream, for several server processes or hosts.

The API appends each prepared view to the stream (``XADD``, trimmed to about
``STICH_VIEW_BUFFER_SIZE`` entries); ``stich worker`` reads it with a consumer group
(``XREADGROUP``), counts a batch in one transaction, and only then acknowledges it
(``XACK`` + ``XDEL``). Delivery is at least once: a worker that dies between the commit
and the acknowledgement leaves its entries pending, another consumer takes them over once
they have been idle ``STICH_VIEW_CLAIM_IDLE_SECONDS`` (``XAUTOCLAIM``), and counting them
again changes nothing, because ingestion inserts only views whose (app, viewer, window)
is absent from ``app_views``, a key the database enforces.

An unreachable Redis never fails a request: the view is shed and counted, and the error is
logged once per outage.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import redis
import structlog

from stich.analytics.models import VIEWER_KEY_LENGTH
from stich.analytics.queue import ViewQueueStats, ingest_batch
from stich.analytics.repository import NewView
from stich.auth.models import DeviceType
from stich.config import Settings
from stich.crypto.tokens import KeyedHasher
from stich.db import Database

GROUP = "stich-views"
log = structlog.get_logger("stich.views")
Entry = tuple[bytes, dict[bytes, bytes]]


def encode_view(view: NewView) -> str:
    return json.dumps(
        [
            view.app_id,
            view.viewer_key,
            view.window_start,
            view.referrer_origin,
            view.device_type.value,
            view.viewed_at.isoformat(),
        ],
        separators=(",", ":"),
    )


def decode_view(raw: bytes | str) -> NewView:
    """A view from its stream entry; ValueError if it is not one."""
    try:
        fields = json.loads(raw)
        if isinstance(fields, list) and len(fields) == 7:
            del fields[3]  # written before 0009: it carried the user id, no longer kept
        app_id, key, window, origin, device, at = fields
        viewed_at = datetime.fromisoformat(at)
        if viewed_at.tzinfo is None or not isinstance(window, int):
            raise ValueError("naive time or bad window")
        key = str(key)[:VIEWER_KEY_LENGTH]  # older entries carry the full-length hash
        return NewView(app_id, key, window, origin, DeviceType(device), viewed_at)
    except (TypeError, ValueError, KeyError) as exc:
        raise ValueError(f"not a queued view: {exc}") from exc


def redis_client(settings: Settings) -> redis.Redis:
    assert settings.view_queue_url is not None
    # Short timeouts: a request must never hang on the queue.
    return redis.Redis.from_url(
        settings.view_queue_url, socket_timeout=2.0, socket_connect_timeout=2.0
    )


class RedisViewQueue:
    """The API's side: append views to the stream."""

    def __init__(self, settings: Settings, client: redis.Redis | None = None) -> None:
        self.client = client or redis_client(settings)
        self.stream = settings.view_queue_stream
        self.max_length = settings.view_buffer_size
        self.stats = ViewQueueStats()
        self._outage = False

    def put(self, view: NewView) -> bool:
        try:
            self.client.xadd(
                self.stream, {"v": encode_view(view)}, maxlen=self.max_length, approximate=True
            )
        except redis.RedisError as exc:
            self.stats.shed += 1
            if not self._outage:
                self._outage = True
                log.error("view queue unreachable; shedding views", error=str(exc))
            return False
        if self._outage:
            self._outage = False
            log.info("view queue reachable again")
        self.stats.queued += 1
        return True

    def flush(self) -> int:
        return 0  # nothing is held in this process

    def backlog(self) -> int | None:
        try:
            return int(self.client.xlen(self.stream))
        except redis.RedisError:
            return None

    def start(self) -> None:
        pass

    def close(self) -> None:
        self.client.close()


class RedisViewConsumer:
    """The worker's side: read, count, then acknowledge; take over what a dead consumer
    left pending."""

    def __init__(
        self,
        db: Database,
        hasher: KeyedHasher,
        *,
        settings: Settings | None = None,
        name: str | None = None,
        client: redis.Redis | None = None,
    ) -> None:
        settings = settings or db.settings
        self.db = db
        self.hasher = hasher
        self.settings = settings
        self.client = client or redis_client(settings)
        self.stream = settings.view_queue_stream
        self.name = name or f"{socket.gethostname()}-{os.getpid()}"
        self.batch_size = settings.view_batch_size
        self.block_ms = settings.view_flush_ms
        self.claim_idle_ms = settings.view_claim_idle_seconds * 1000
        self.stats = ViewQueueStats()
        self._own_pending = True  # first look at what this name left unacknowledged
        self._next_claim = 0.0
        self._group_ready = False

    def ensure_group(self) -> None:
        if self._group_ready:
            return
        try:
            # From the stream's start: views queued before any worker existed count too.
            self.client.xgroup_create(self.stream, GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._group_ready = True

    def poll(self) -> int:
        """One round: claim stale entries, else retry our own pending, else read new ones
        (waiting up to the flush interval). How many entries it handled."""
        self.ensure_group()
        entries = self._claim_stale()
        if not entries and self._own_pending:
            entries = self._read("0", block_ms=None)
            self._own_pending = bool(entries)
        if not entries:
            entries = self._read(">", block_ms=self.block_ms)
        if entries:
            self._handle(entries)
        return len(entries)

    def run(self, stop: threading.Event) -> None:
        """Consume until ``stop`` is set; the batch in hand is finished and acknowledged."""
        backoff = 0.0
        while not stop.is_set():
            try:
                self.poll()
                backoff = 0.0
            except Exception:  # Redis or the database away: keep trying, slower
                self.stats.failures += 1
                self._own_pending = True
                backoff = min(max(backoff * 2, 0.25), 5.0)
                log.exception("view consumer round failed; retrying", backoff_s=backoff)
                stop.wait(backoff)

    def close(self) -> None:
        self.client.close()

    def _claim_stale(self) -> list[Entry]:
        now = time.monotonic()
        if now < self._next_claim:
            return []
        self._next_claim = now + max(self.claim_idle_ms / 2000, 0.5)
        reply: Any = self.client.xautoclaim(
            self.stream, GROUP, self.name, self.claim_idle_ms, "0-0", count=self.batch_size
        )
        claimed: list[Entry] = [(i, f or {}) for i, f in reply[1]]
        if claimed:
            log.info("took over pending views", views=len(claimed), consumer=self.name)
        return claimed

    def _read(self, start: str, *, block_ms: int | None) -> list[Entry]:
        reply: Any = self.client.xreadgroup(
            GROUP, self.name, {self.stream: start}, count=self.batch_size, block=block_ms
        )
        if not reply:
            return []
        # An entry trimmed away while pending comes back without fields: acknowledged below.
        return [(i, f or {}) for i, f in reply[0][1]]

    def _handle(self, entries: Sequence[Entry]) -> None:
        views: list[NewView] = []
        for entry_id, fields in entries:
            try:
                views.append(decode_view(fields.get(b"v", b"")))
            except ValueError:
                log.error("dropping a malformed view entry", entry=entry_id.decode())
        try:
            counted = ingest_batch(self.db, self.settings, self.hasher, views) if views else 0
        except Exception:
            self._own_pending = True  # left pending: retried, by us or by another
            raise
        ids = [entry_id for entry_id, _ in entries]
        pipe = self.client.pipeline(transaction=False)
        pipe.xack(self.stream, GROUP, *ids)
        pipe.xdel(self.stream, *ids)
        pipe.execute()
        self.stats.batches += 1
        self.stats.ingested += len(views)
        self.stats.counted += counted
