"""Pieces of identity that need no database: hashing, parsing, policies and validation."""

from __future__ import annotations

from datetime import timedelta

import pytest
from argon2 import PasswordHasher

from stich.auth.anonymous import anonymous_token_is_genuine, mint_anonymous_token
from stich.auth.models import DeviceType
from stich.auth.outcomes import AuthPolicy
from stich.auth.useragent import mask_ip, parse_user_agent
from stich.crypto.passwords import Passwords
from stich.crypto.tokens import KeyedHasher, TokenKind, new_token, token_kind
from stich.users.schemas import (
    ProfileUpdate,
    check_timezone,
    normalize_email,
    normalize_username,
)
from tests.auth_support import FIREFOX_LINUX, SAFARI_IPHONE

FAST = {"time_cost": 1, "memory_cost": 8, "parallelism": 1}


def test_password_hash_is_argon2id_and_verifies() -> None:
    passwords = Passwords(**FAST)
    stored = passwords.hash("s3cret password")
    assert stored.startswith("$argon2id$")
    assert "s3cret" not in stored
    assert passwords.verify(stored, "s3cret password")
    assert not passwords.verify(stored, "s3cret passwore")


def test_unknown_account_verifies_against_a_dummy_hash(monkeypatch: pytest.MonkeyPatch) -> None:
    passwords = Passwords(**FAST)
    passwords.warm_up()
    verified: list[str] = []
    original = PasswordHasher.verify

    def spy(self: PasswordHasher, hash: str | bytes, password: str | bytes) -> bool:
        verified.append(str(hash))
        return original(self, hash, password)

    monkeypatch.setattr(PasswordHasher, "verify", spy)
    assert not passwords.verify(None, "anything at all")
    # One real argon2 verification, against a hash made with the live parameters.
    assert len(verified) == 1 and verified[0].startswith("$argon2id$v=19$m=8,t=1,p=1$")


def test_corrupt_stored_hash_is_a_failed_check_not_an_error() -> None:
    passwords = Passwords(**FAST)
    assert not passwords.verify("not-a-hash", "whatever")
    assert not passwords.verify("$argon2id$v=19$m=8,t=1,p=1$AAAA$BBBB", "whatever")
    assert passwords.needs_rehash("not-a-hash")


def test_rehash_is_needed_when_parameters_change() -> None:
    old = Passwords(**FAST)
    stored = old.hash("a long password")
    assert not old.needs_rehash(stored)
    stronger = Passwords(time_cost=2, memory_cost=16, parallelism=1)
    assert stronger.needs_rehash(stored)
    assert stronger.verify(stored, "a long password")  # old hashes still verify


@pytest.mark.parametrize(
    ("failures", "locked"),
    [(1, None), (4, None), (5, 60), (6, 120), (7, 240), (9, 900), (50, 900), (10_000, 900)],
)
def test_lockout_doubles_from_the_threshold_up_to_the_cap(
    failures: int, locked: int | None
) -> None:
    policy = AuthPolicy(
        access_ttl=timedelta(minutes=15),
        refresh_ttl=timedelta(days=30),
        reuse_grace=timedelta(0),
        max_sessions=10,
        max_api_keys=10,
        lockout_threshold=5,
        lockout_base=timedelta(seconds=60),
        lockout_max=timedelta(seconds=900),
    )
    lock = policy.lock_for(failures)
    assert (lock.total_seconds() if lock else None) == locked


def test_anonymous_tokens_carry_a_server_key_tag() -> None:
    hasher = KeyedHasher(b"k" * 32)
    token = mint_anonymous_token(hasher)
    assert token_kind(token) is TokenKind.ANONYMOUS
    assert anonymous_token_is_genuine(hasher, token)
    assert not anonymous_token_is_genuine(KeyedHasher(b"x" * 32), token)
    # Made up, or tampered with: refused.
    assert not anonymous_token_is_genuine(hasher, new_token(TokenKind.ANONYMOUS))
    tampered = token[:-1] + ("0" if token[-1] != "0" else "1")
    assert not anonymous_token_is_genuine(hasher, tampered)
    assert not anonymous_token_is_genuine(hasher, "stich_san_short")


@pytest.mark.parametrize(
    ("agent", "device", "os", "browser"),
    [
        (FIREFOX_LINUX, DeviceType.DESKTOP, "Linux", "Firefox"),
        (SAFARI_IPHONE, DeviceType.MOBILE, "iOS", "Safari"),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/126.0.0.0 Safari/537.36 Edg/126.0.0.0",
            DeviceType.DESKTOP,
            "Windows",
            "Edge",
        ),
        (
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like "
            "Gecko) Chrome/126.0.0.0 Safari/537.36",
            DeviceType.DESKTOP,
            "macOS",
            "Chrome",
        ),
        (
            "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/126.0.0.0 Mobile Safari/537.36",
            DeviceType.MOBILE,
            "Android",
            "Chrome",
        ),
        (
            "Mozilla/5.0 (Linux; Android 13; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/126.0.0.0 Safari/537.36",
            DeviceType.TABLET,
            "Android",
            "Chrome",
        ),
        (
            "Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
            "Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
            DeviceType.TABLET,
            "iPadOS",
            "Safari",
        ),
        ("curl/8.5.0", DeviceType.BOT, None, "curl"),
        ("Googlebot/2.1 (+http://www.google.com/bot.html)", DeviceType.BOT, None, None),
        (None, DeviceType.UNKNOWN, None, None),
        ("", DeviceType.UNKNOWN, None, None),
    ],
)
def test_user_agent_parsing(
    agent: str | None, device: DeviceType, os: str | None, browser: str | None
) -> None:
    parsed = parse_user_agent(agent)
    assert (parsed.device_type, parsed.os, parsed.browser) == (device, os, browser)


def test_ip_is_masked_to_its_network() -> None:
    assert mask_ip("203.0.113.77") == "203.0.113.0/24"
    assert mask_ip("2001:db8:abcd:12::1") == "2001:db8:abcd::/48"
    assert mask_ip("::ffff:198.51.100.9") == "198.51.100.0/24"
    assert mask_ip("testclient") is None
    assert mask_ip(None) is None


def test_email_is_normalised() -> None:
    assert normalize_email("  Alice.Example@Example.TEST ") == "alice.example@example.test"
    for bad in ["nope", "a@b", "a b@example.test", "@example.test", "a@@example.test"]:
        with pytest.raises(ValueError):
            normalize_email(bad)


def test_username_rule() -> None:
    assert normalize_username("Ada_Lovelace-1") == "ada_lovelace-1"
    for bad in ["ab", "x" * 31, "has space", "dots.not.ok", "ünïcode", "admin", "me"]:
        with pytest.raises(ValueError):
            normalize_username(bad)


def test_timezone_must_be_iana() -> None:
    assert check_timezone("Europe/Berlin") == "Europe/Berlin"
    for bad in ["Mars/Olympus", "utc+2", "", "../../etc/passwd"]:
        with pytest.raises(ValueError):
            check_timezone(bad)


def test_profile_update_reports_only_sent_fields() -> None:
    update = ProfileUpdate.model_validate({"bio": None, "theme": "dark"})
    assert update.changes() == {"bio": None, "theme": "dark"}
    with pytest.raises(ValueError):
        ProfileUpdate.model_validate({"preferences": {"blob": "x" * 9000}})
    with pytest.raises(ValueError):
        ProfileUpdate.model_validate({"preferences": {"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}}})
    with pytest.raises(ValueError):
        ProfileUpdate.model_validate({"password_hash": "x"})  # unknown fields are refused
