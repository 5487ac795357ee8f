"""Messages from templates: plain text plus HTML, with the product name and link base
(``STICH_PUBLIC_URL``) from settings."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from enum import StrEnum
from functools import lru_cache

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from stich.config import Settings


class Template(StrEnum):
    VERIFY_EMAIL = "verify_email"
    RESET_PASSWORD = "reset_password"  # noqa: S105 (a purpose, not a password)
    CHANGE_EMAIL = "change_email"
    EMAIL_CHANGE_NOTICE = "email_change_notice"
    EMAIL_CHANGED = "email_changed"


_SUBJECTS = {
    Template.VERIFY_EMAIL: "Confirm your email address",
    Template.RESET_PASSWORD: "Reset your password",
    Template.CHANGE_EMAIL: "Confirm your new email address",
    Template.EMAIL_CHANGE_NOTICE: "Your account's email address is about to change",
    Template.EMAIL_CHANGED: "Your account's email address was changed",
}
# The page that takes the token. It travels in the fragment, which browsers never send
# to a server: it stays out of access logs and Referer headers.
_LINK_PATHS = {
    Template.VERIFY_EMAIL: "/verify-email",
    Template.RESET_PASSWORD: "/reset-password",
    Template.CHANGE_EMAIL: "/confirm-email",
}


@dataclass(frozen=True)
class OutgoingMail:
    """A message to send once the transaction that decided it has committed.

    ``email`` is the address the message is about (for a change notice, the old one).
    """

    template: Template
    to: str
    display_name: str
    email: str
    token: str | None = None
    expires_in: timedelta | None = None

    def __repr__(self) -> str:  # never show the token
        return f"OutgoingMail(template={self.template.value!r})"


@lru_cache(maxsize=1)
def _environment() -> Environment:
    return Environment(
        loader=PackageLoader("stich.mail", "templates"),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
    )


def link_for(template: Template, token: str, settings: Settings) -> str:
    return f"{settings.public_url}{_LINK_PATHS[template]}#token={token}"


def _duration(delta: timedelta | None) -> str:
    if delta is None:
        return ""
    minutes = round(delta.total_seconds() / 60)
    if minutes < 120:
        return f"{minutes} minutes"
    hours = round(minutes / 60)
    return f"{hours} hours" if hours < 48 else f"{round(hours / 24)} days"


def render(mail: OutgoingMail, settings: Settings) -> EmailMessage:
    subject = f"{settings.product_name}: {_SUBJECTS[mail.template]}"
    context = {
        "subject": subject,
        "product": settings.product_name,
        "public_url": settings.public_url,
        "display_name": mail.display_name,
        "email": mail.email,
        "token": mail.token or "",
        "link": link_for(mail.template, mail.token, settings) if mail.token else "",
        "expires_in": _duration(mail.expires_in),
    }
    environment = _environment()
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = settings.mail_from
    message["To"] = Address(display_name=mail.display_name, addr_spec=mail.to)
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = make_msgid(domain=_domain(settings.mail_from))
    message["X-Stich-Template"] = mail.template.value
    text = environment.get_template(f"{mail.template}.txt").render(context)
    # Plain ASCII stays as it is (7bit), so an outbox file reads and its link copies as is.
    message.set_content(text, cte="7bit" if text.isascii() else "quoted-printable")
    message.add_alternative(
        environment.get_template(f"{mail.template}.html").render(context), subtype="html"
    )
    return message


def _domain(sender: str) -> str:
    address = sender.rsplit("<", 1)[-1].rstrip(">").strip()
    return address.rpartition("@")[2] or "localhost"
