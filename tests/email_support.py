"""A real SMTP server in the test process (aiosmtpd) and helpers to read what it got."""

from __future__ import annotations

import email
import re
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from email.policy import default as default_policy
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from stich.config import Settings
from stich.mail.sender import mailer_for

_TOKEN = re.compile(r"#token=([A-Za-z0-9_-]+)")


class Inbox:
    """Messages the server accepted; ``refuse_next`` makes it answer 451 that many times."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.refused = 0
        self.refuse_next = 0
        self._lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self._lock:
            if self.refuse_next:
                self.refuse_next -= 1
                self.refused += 1
                return "451 4.3.0 try again later"
            message = email.message_from_bytes(envelope.content, policy=default_policy)
            assert isinstance(message, EmailMessage)
            self.messages.append(message)
        return "250 OK"

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if address in str(m["To"])]

    def last_to(self, address: str, template: str | None = None) -> EmailMessage:
        found = [
            m for m in self.to(address) if template is None or m["X-Stich-Template"] == template
        ]
        assert found, f"no message to {address} ({template})"
        return found[-1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def smtp_server(port: int | None = None) -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = port or free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


def delivered(settings: Settings) -> None:
    """Wait until the process's sender has nothing queued or in flight."""
    assert mailer_for(settings).flush(timeout=30)


def text_of(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    content: str = body.get_content()
    return content


def html_of(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("html",))
    assert body is not None
    content: str = body.get_content()
    return content


def token_in(message: EmailMessage) -> str:
    """The token of the link in the plain-text part (the HTML part carries the same)."""
    found = _TOKEN.search(text_of(message))
    assert found, text_of(message)
    token = found.group(1)
    assert f"#token={token}" in html_of(message)
    return token


# Fixtures for every test module (registered in conftest's pytest_plugins).
@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    """A real SMTP server in the test process: its inbox and port."""
    with smtp_server() as server:
        yield server


@pytest.fixture
def inbox(smtp: tuple[Inbox, int]) -> Inbox:
    return smtp[0]
