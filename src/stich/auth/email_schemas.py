"""Bodies of the email verification, password reset and email change endpoints."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from stich.users.schemas import AnyPassword, Email, NewPassword
from stich.validation import ONE_LINE


def _token(prefix: str, what: str) -> Any:
    """A link's token as the server issues it; anything else is a 422."""
    return Field(
        min_length=len(prefix) + 20,
        max_length=len(prefix) + 100,
        pattern=rf"^{prefix}[A-Za-z0-9_-]+$",
        description=f"the token of {what} (``{prefix}…``), from the link or the mail",
    )


VerifyToken = Annotated[str, _token("stich_sev_", "a verification link")]
ResetToken = Annotated[str, _token("stich_spr_", "a password reset link")]
ChangeToken = Annotated[str, _token("stich_sec_", "an email change link")]

ACCEPTED_MESSAGE = (
    "If an account can use this address, a message is on its way. "
    "Links expire; ask again if yours does not arrive."
)


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AddressIn(_Input):
    # Not validated as an address: a malformed one is answered like an unknown one.
    email: Annotated[str, ONE_LINE, Field(min_length=1, max_length=320)]


class VerifyTokenIn(_Input):
    token: VerifyToken


class ChangeTokenIn(_Input):
    token: ChangeToken


class PasswordResetIn(_Input):
    token: ResetToken
    new_password: NewPassword


class EmailChangeIn(_Input):
    new_email: Email
    password: AnyPassword | None = Field(
        default=None, description="Required when the account has a password"
    )


class AcceptedOut(BaseModel):
    """The same answer whether or not the address belongs to an account."""

    status: Literal["accepted"] = "accepted"
    message: str = ACCEPTED_MESSAGE


class EmailStateOut(BaseModel):
    user_id: str
    email: str
    email_verified: bool


class PasswordResetOut(BaseModel):
    sessions_revoked: int
    api_keys_revoked: int
