"""Mail delivery: the outbox default, SMTP with STARTTLS / implicit TLS and auth, retries,
and a dead server that never fails the request."""

from __future__ import annotations

import datetime as dt
import email
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from stich.api.app import create_app
from stich.cli.common import state
from stich.cli.main import app as cli
from stich.config import Settings, SettingsError
from stich.db import Database
from stich.mail.sender import mailer_for
from stich.mail.transport import parse_smtp_url
from tests.auth_support import auth_settings, register
from tests.conftest import TEST_SERVER_KEY
from tests.email_support import Inbox, delivered, free_port, smtp_server, token_in


@contextmanager
def client_with(db: Database, settings: Settings, **overrides: object) -> Iterator[TestClient]:
    """A client of the same database with other (validated) settings."""
    changed = type(settings).model_validate({**settings.model_dump(), **overrides})
    with TestClient(create_app(changed, db), raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return auth_settings(database_url, tmp_path, mail_retry_delay_seconds=0)


def test_without_smtp_mail_is_a_readable_eml_in_the_outbox(
    client: TestClient, settings: Settings, tmp_path: Path
) -> None:
    assert settings.smtp_url is None
    assert settings.outbox_dir() == tmp_path / "outbox"  # beside the server key file
    account = register(client)
    delivered(settings)
    files = sorted((tmp_path / "outbox").glob("*.eml"))
    assert len(files) == 1
    assert files[0].stat().st_mode & 0o777 == 0o600
    raw = files[0].read_text()
    assert "Subject: Stich: Confirm your email address" in raw
    assert f"{settings.public_url}/verify-email#token=stich_sev_" in raw  # plain, not encoded
    message = email.message_from_string(raw, policy=default_policy)
    assert isinstance(message, EmailMessage)
    assert message["To"].addresses[0].addr_spec == account.email
    token = token_in(message)
    confirmed = client.post("/api/auth/email/verify/confirm", json={"token": token})
    assert confirmed.status_code == 200


def test_a_dead_smtp_server_fails_no_request_and_is_retried(
    db: Database, settings: Settings
) -> None:
    port = free_port()  # nothing listens there
    with client_with(
        db, settings, smtp_url=f"smtp://127.0.0.1:{port}", mail_send_attempts=3
    ) as client:
        account = register(client)
        forgot = client.post("/api/auth/password/forgot", json={"email": account.email})
        assert forgot.status_code == 202
        sender = mailer_for(client.app.state.settings)  # type: ignore[attr-defined]
        assert sender.flush(timeout=30)
    assert sender.delivered == 0
    assert sender.failed_attempts == 6  # two messages, three attempts each
    assert sender.given_up == 2


def test_a_refused_message_is_delivered_on_a_later_attempt(
    db: Database, settings: Settings
) -> None:
    with (
        smtp_server() as (inbox, port),
        client_with(
            db, settings, smtp_url=f"smtp://127.0.0.1:{port}", mail_send_attempts=3
        ) as client,
    ):
        inbox.refuse_next = 2  # 451 twice: a temporary failure
        account = register(client)
        sender = mailer_for(client.app.state.settings)  # type: ignore[attr-defined]
        assert sender.flush(timeout=30)
        assert inbox.refused == 2
        assert [m["X-Stich-Template"] for m in inbox.to(account.email)] == ["verify_email"]
        assert sender.delivered == 1


# -- TLS and authentication --------------------------------------------------------------


def _tls_context(tmp_path: Path) -> ssl.SSLContext:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "smtp.crt", tmp_path / "smtp.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    return context


class Logins:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def __call__(self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
        if not isinstance(data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login, password = data.login.decode(), data.password.decode()
        self.seen.append((login, password))
        return AuthResult(success=(login, password) == ("mailer", "s3cret pass"))


@pytest.mark.parametrize("mode", ["starttls", "implicit"])
def test_smtp_over_tls_with_authentication(
    db: Database, settings: Settings, tmp_path: Path, mode: str
) -> None:
    inbox, logins, port = Inbox(), Logins(), free_port()
    context = _tls_context(tmp_path)
    options: dict[str, Any] = {"authenticator": logins}
    if mode == "starttls":
        options |= {"tls_context": context, "require_starttls": True, "auth_require_tls": True}
        url = f"smtp://mailer:s3cret%20pass@127.0.0.1:{port}?starttls=true&verify=false"
    else:
        # TLS from the first byte (aiosmtpd's auth_require_tls only knows STARTTLS).
        options |= {"ssl_context": context, "auth_require_tls": False}
        url = f"smtps://mailer:s3cret%20pass@127.0.0.1:{port}?verify=false"
    controller = Controller(inbox, hostname="127.0.0.1", port=port, **options)
    controller.start()
    try:
        with client_with(db, settings, smtp_url=url, mail_send_attempts=1) as client:
            account = register(client)
            sender = mailer_for(client.app.state.settings)  # type: ignore[attr-defined]
            assert sender.flush(timeout=30)
    finally:
        controller.stop()
    assert logins.seen == [("mailer", "s3cret pass")]
    assert [m["X-Stich-Template"] for m in inbox.to(account.email)] == ["verify_email"]


def test_smtp_urls() -> None:
    starttls = parse_smtp_url("smtp://u%40x:p%3Aw@mail.example.com:587")
    assert (starttls.host, starttls.port, starttls.security) == (
        "mail.example.com",
        587,
        "starttls",
    )
    assert (starttls.username, starttls.password) == ("u@x", "p:w")
    assert "p:w" not in repr(starttls)
    assert parse_smtp_url("smtp://relay").security == "none"
    assert parse_smtp_url("smtp://relay:25?starttls=true").security == "starttls"
    implicit = parse_smtp_url("smtps://mail.example.com")
    assert (implicit.port, implicit.security) == (465, "tls")
    for bad in ("http://mail.example.com", "smtp://", "smtp://h?starttls=maybe"):
        with pytest.raises(ValueError):
            parse_smtp_url(bad)


def test_a_bad_smtp_url_is_a_settings_error(database_url: str, tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="STICH_SMTP_URL"):
        auth_settings(database_url, tmp_path, smtp_url="mailto:someone@example.com")


def test_a_mail_that_cannot_even_be_queued_fails_no_request(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: object, mails: object) -> None:
        raise RuntimeError("the queue is broken")

    monkeypatch.setattr("stich.mail.sender.MailSender.submit", broken)
    account = register(client)  # 201: the account exists, committed before the handover
    forgot = client.post("/api/auth/password/forgot", json={"email": account.email})
    assert forgot.status_code == 202


def test_stich_mail_outbox_lists_and_shows_messages(
    client: TestClient, settings: Settings, tmp_path: Path, database_url: str
) -> None:
    account = register(client)
    delivered(settings)
    state._settings = None  # a fresh invocation reads its own environment
    env = {
        "STICH_SERVER_KEY": TEST_SERVER_KEY,
        "STICH_ENV": "test",
        "STICH_DATABASE_URL": database_url,
        "STICH_MAIL_OUTBOX_DIR": str(tmp_path / "outbox"),
    }
    listed = CliRunner().invoke(cli, ["mail", "outbox"], env=env)
    assert listed.exit_code == 0, listed.output
    assert "1 message(s)" in listed.output and account.email in listed.output
    state._settings = None
    shown = CliRunner().invoke(cli, ["mail", "outbox", "--last"], env=env)
    assert shown.exit_code == 0, shown.output
    assert f"{settings.public_url}/verify-email#token=stich_sev_" in shown.output
    state._settings = None
    missing = CliRunner().invoke(cli, ["mail", "outbox", "../server.key"], env=env)
    assert missing.exit_code != 0
