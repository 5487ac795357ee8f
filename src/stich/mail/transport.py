"""Where a message goes: an SMTP server (STARTTLS or implicit TLS, optional auth), or,
with no server configured, an outbox directory of ``.eml`` files."""

from __future__ import annotations

import os
import smtplib
import ssl
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Literal, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

import structlog

log = structlog.get_logger("stich.mail")

Security = Literal["none", "starttls", "tls"]
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    security: Security
    username: str | None = None
    password: str | None = None
    verify_certificate: bool = True

    def __repr__(self) -> str:  # never show the password
        return f"SmtpConfig(host={self.host!r}, port={self.port}, security={self.security!r})"


def _flag(query: dict[str, list[str]], name: str, default: bool) -> bool:
    values = query.get(name)
    if not values:
        return default
    value = values[-1].lower()
    if value not in _TRUE | _FALSE:
        raise ValueError(f"?{name}= must be true or false")
    return value in _TRUE


def parse_smtp_url(raw: str) -> SmtpConfig:
    """``smtp://[user:pass@]host[:port][?starttls=true&verify=true]`` or ``smtps://…``.

    smtp:// speaks STARTTLS when ``starttls=true`` (the default on port 587); smtps://
    is TLS from the first byte (port 465 by default).
    """
    parts = urlsplit(raw)
    if parts.scheme not in ("smtp", "smtps"):
        raise ValueError("must be an smtp:// or smtps:// URL")
    if not parts.hostname:
        raise ValueError("names no host, e.g. smtp://user:pass@mail.example.com:587")
    try:
        port = parts.port
    except ValueError:
        raise ValueError("has an invalid port") from None
    query = parse_qs(parts.query)
    if parts.scheme == "smtps":
        port = port or 465
        security: Security = "tls"
    else:
        port = port or 25
        security = "starttls" if _flag(query, "starttls", port == 587) else "none"
    return SmtpConfig(
        host=parts.hostname,
        port=port,
        security=security,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        verify_certificate=_flag(query, "verify", True),
    )


class Transport(Protocol):
    def send(self, message: EmailMessage) -> None:
        """Deliver or raise (OSError, smtplib.SMTPException): the sender retries."""

    def describe(self) -> str: ...


class SmtpTransport:
    def __init__(self, config: SmtpConfig, timeout: float) -> None:
        self.config = config
        self.timeout = timeout

    def _tls_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        if not self.config.verify_certificate:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def send(self, message: EmailMessage) -> None:
        config = self.config
        smtp: smtplib.SMTP
        if config.security == "tls":
            smtp = smtplib.SMTP_SSL(
                config.host, config.port, timeout=self.timeout, context=self._tls_context()
            )
        else:
            smtp = smtplib.SMTP(config.host, config.port, timeout=self.timeout)
        with smtp:
            if config.security == "starttls":
                smtp.starttls(context=self._tls_context())
            if config.username is not None:
                smtp.login(config.username, config.password or "")
            smtp.send_message(message)

    def describe(self) -> str:
        return f"smtp {self.config.host}:{self.config.port} ({self.config.security})"


class OutboxTransport:
    """Each message as a readable ``.eml`` file; written to a temporary name, then renamed,
    so a reader never sees half a message."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def send(self, message: EmailMessage) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        name = f"{stamp}-{uuid.uuid4().hex[:8]}.eml"
        temporary = self.directory / f".{name}.tmp"
        temporary.write_bytes(bytes(message))
        os.chmod(temporary, 0o600)  # the links in it sign people in
        temporary.replace(self.directory / name)
        log.info("mail written to the outbox", path=str(self.directory / name))

    def describe(self) -> str:
        return f"outbox {self.directory}"
