"""Delivery off the request path: a small sender thread per configuration, with retries.

Endpoints hand over :class:`OutgoingMail` only after their unit of work has committed,
so a rolled-back request sends nothing; the handover is an append to an in-memory queue,
so a slow or dead mail server never delays a response, nor turns it into an error. A
message that fails is retried (``STICH_MAIL_SEND_ATTEMPTS``, the delay doubling each
time) and then dropped with an error in the log. The queue lives in the process: a crash
or restart loses what was still waiting — the person asks for a new link.
"""

from __future__ import annotations

import heapq
import itertools
import smtplib
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import structlog

from stich.config import Settings
from stich.mail.message import OutgoingMail, render
from stich.mail.transport import OutboxTransport, SmtpTransport, Transport, parse_smtp_url

log = structlog.get_logger("stich.mail")

IDLE_SECONDS = 30.0  # the thread ends after this long with nothing to send


@dataclass(order=True)
class _Queued:
    due: float
    seq: int
    mail: OutgoingMail = field(compare=False)
    attempt: int = field(compare=False, default=1)


def transport_for(settings: Settings) -> Transport:
    if settings.smtp_url is not None:
        config = parse_smtp_url(settings.smtp_url.get_secret_value())
        return SmtpTransport(config, settings.smtp_timeout_seconds)
    return OutboxTransport(settings.outbox_dir())


class MailSender:
    def __init__(self, settings: Settings, transport: Transport | None = None) -> None:
        self.settings = settings
        self.transport = transport or transport_for(settings)
        self._cond = threading.Condition()
        self._queue: list[_Queued] = []
        self._seq = itertools.count()
        self._busy = 0
        self._thread: threading.Thread | None = None
        self.delivered = 0
        self.failed_attempts = 0
        self.given_up = 0

    def submit(self, mails: Iterable[OutgoingMail]) -> None:
        """Queue messages for delivery; returns at once."""
        with self._cond:
            for mail in mails:
                heapq.heappush(self._queue, _Queued(time.monotonic(), next(self._seq), mail))
            if self._queue and self._thread is None:
                self._thread = threading.Thread(target=self._run, name="stich-mail", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until nothing is queued or being sent (tests, the CLI); False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._queue or self._busy:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    def _next(self) -> _Queued | None:
        with self._cond:
            while True:
                if not self._queue:
                    self._cond.wait(IDLE_SECONDS)
                    if not self._queue:
                        self._thread = None
                        return None
                    continue
                delay = self._queue[0].due - time.monotonic()
                if delay <= 0:
                    self._busy += 1
                    return heapq.heappop(self._queue)
                self._cond.wait(delay)

    def _run(self) -> None:
        while (item := self._next()) is not None:
            try:
                self._deliver(item)
            finally:
                with self._cond:
                    self._busy -= 1
                    self._cond.notify_all()

    def _deliver(self, item: _Queued) -> None:
        fields = {"template": item.mail.template.value, "attempt": item.attempt}
        try:
            message = render(item.mail, self.settings)
            self.transport.send(message)
        except (OSError, smtplib.SMTPException) as exc:
            self.failed_attempts += 1
            if item.attempt >= self.settings.mail_send_attempts:
                self.given_up += 1
                log.error("mail not delivered; giving up", error=type(exc).__name__, **fields)
                return
            wait = self.settings.mail_retry_delay_seconds * 2 ** (item.attempt - 1)
            log.warning("mail delivery failed; will retry", error=type(exc).__name__, **fields)
            with self._cond:
                heapq.heappush(
                    self._queue,
                    _Queued(time.monotonic() + wait, next(self._seq), item.mail, item.attempt + 1),
                )
            return
        except Exception:  # a bug in a template, say: never kill the sender thread
            self.given_up += 1
            log.exception("mail could not be built", **fields)
            return
        self.delivered += 1
        log.info(
            "mail sent",
            via=self.transport.describe(),
            message_id=str(message["Message-ID"]),
            **fields,
        )


_senders: dict[tuple[object, ...], MailSender] = {}
_registry_lock = threading.Lock()


def _configuration(settings: Settings) -> tuple[object, ...]:
    smtp = settings.smtp_url.get_secret_value() if settings.smtp_url else None
    return (
        smtp,
        settings.outbox_dir().resolve(),
        settings.mail_from,
        settings.public_url,
        settings.product_name,
        settings.mail_send_attempts,
        settings.mail_retry_delay_seconds,
        settings.smtp_timeout_seconds,
    )


def mailer_for(settings: Settings) -> MailSender:
    """The process's sender for these mail settings (one queue and thread per configuration)."""
    key = _configuration(settings)
    with _registry_lock:
        sender = _senders.get(key)
        if sender is None:
            sender = _senders[key] = MailSender(settings)
            log.info("mail delivery configured", via=sender.transport.describe())
        return sender


def send_after_commit(settings: Settings, mails: list[OutgoingMail]) -> None:
    """Hand messages to the sender; call it after the ``with ctx.write()`` block, so only
    committed decisions send mail. Never blocks, never raises for delivery."""
    if not mails:
        return
    try:
        mailer_for(settings).submit(mails)
    except Exception:  # the request succeeded and is committed; it must not become a 500
        log.exception("mail could not be queued", templates=[m.template.value for m in mails])
